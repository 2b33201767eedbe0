//! The CSV tables of a report: `aggregates.csv`, `correlations.csv`,
//! `trends.csv`, `confounding.csv`. Numbers are written in Rust's shortest round-trip form so
//! that equal inputs give byte-identical files; missing values are empty.

use crate::aggregate::{Aggregate, GroupKey};
use crate::analysis::{method_name, Analysis, CorrelationRow, Scope, Target, TrendRow};
use crate::confound::{ControlRow, ControlledRow, CONTROL};
use stiffness_stats::{Correlation, Method, NotComputable};

/// Header of `aggregates.csv`.
pub const AGGREGATES_HEADER: [&str; 22] = [
    "model",
    "model_sha256",
    "block",
    "block_index",
    "kind",
    "spectrum",
    "label",
    "label_name",
    "metric",
    "present",
    "n",
    "excluded",
    "pos_inf",
    "neg_inf",
    "nan",
    "mean",
    "median",
    "std",
    "ci_low",
    "ci_high",
    "min",
    "max",
];

/// Header of `correlations.csv`.
pub const CORRELATIONS_HEADER: [&str; 18] = [
    "model",
    "model_sha256",
    "block",
    "block_index",
    "kind",
    "spectrum",
    "metric",
    "scope",
    "target",
    "method",
    "n",
    "r",
    "p",
    "ci_low",
    "ci_high",
    "q",
    "excluded",
    "reason",
];

/// Header of `trends.csv`.
pub const TRENDS_HEADER: [&str; 17] = [
    "axis",
    "line",
    "model_sha256",
    "kind",
    "spectrum",
    "metric",
    "points",
    "means",
    "n",
    "rho",
    "p",
    "ci_low",
    "ci_high",
    "q",
    "excluded",
    "reason",
    "method",
];

/// Header of `confounding.csv`: the active share's own correlations
/// (metric `active_share`, method pearson), then every metric given it
/// (method partial_pearson, with the plain r and the r with the control).
pub const CONFOUNDING_HEADER: [&str; 20] = [
    "model",
    "model_sha256",
    "block",
    "block_index",
    "kind",
    "spectrum",
    "metric",
    "scope",
    "target",
    "method",
    "r_plain",
    "r_with_control",
    "n",
    "r",
    "p",
    "ci_low",
    "ci_high",
    "q",
    "excluded",
    "reason",
];

/// Formats a float for a table: shortest round-trip, "inf"/"-inf"/"nan".
pub fn num(x: f64) -> String {
    if x.is_nan() {
        "nan".into()
    } else if x.is_infinite() {
        if x > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        format!("{x}")
    }
}

/// [`num`] of an optional value; `None` is empty.
pub fn opt(x: Option<f64>) -> String {
    x.map(num).unwrap_or_default()
}

fn csv_bytes(header: &[&str], rows: impl Iterator<Item = Vec<String>>) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(header).expect("writing to memory");
    for row in rows {
        w.write_record(&row).expect("writing to memory");
    }
    w.into_inner().expect("writing to memory")
}

/// The bytes of `aggregates.csv`.
pub fn aggregates_csv(a: &Analysis) -> Vec<u8> {
    csv_bytes(&AGGREGATES_HEADER, a.aggregates.iter().map(aggregate_row))
}

fn aggregate_row(a: &Aggregate) -> Vec<String> {
    let s = a.summary;
    let c = a.counts;
    let mut row = a.key.csv_cells();
    row.extend([
        a.label.map_or("all".into(), |l| l.to_string()),
        a.label_name.clone(),
        a.metric.to_string(),
        c.present.to_string(),
        c.finite.to_string(),
        c.excluded().to_string(),
        c.pos_inf.to_string(),
        c.neg_inf.to_string(),
        c.nan.to_string(),
        opt(s.map(|s| s.mean)),
        opt(s.map(|s| s.median)),
        opt(s.and_then(|s| s.std)),
        opt(s.and_then(|s| s.ci_low)),
        opt(s.and_then(|s| s.ci_high)),
        opt(s.map(|s| s.min)),
        opt(s.map(|s| s.max)),
    ]);
    row
}

/// n, r, p, ci_low, ci_high, q, excluded, reason of a test result.
fn result_cells(r: &Result<Correlation, NotComputable>, q: Option<f64>) -> Vec<String> {
    match r {
        Ok(c) => vec![
            c.n.to_string(),
            num(c.r),
            num(c.p),
            num(c.ci_low),
            num(c.ci_high),
            opt(q),
            c.excluded.to_string(),
            String::new(),
        ],
        Err(e) => vec![
            e.n.to_string(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            e.excluded.to_string(),
            e.reason.clone(),
        ],
    }
}

/// The bytes of `correlations.csv`.
pub fn correlations_csv(a: &Analysis) -> Vec<u8> {
    csv_bytes(
        &CORRELATIONS_HEADER,
        a.correlations.iter().map(correlation_row),
    )
}

fn correlation_row(c: &CorrelationRow) -> Vec<String> {
    let mut row = test_cells(&c.key, c.metric.name(), c.scope, c.target, c.method);
    row.extend(result_cells(&c.result, c.q));
    row
}

/// The cells that name a test: the group, the metric, scope, target and method.
fn test_cells(
    k: &GroupKey,
    metric: &str,
    scope: Scope,
    target: Target,
    method: Method,
) -> Vec<String> {
    let mut cells = k.csv_cells();
    cells.extend([
        metric.into(),
        scope.as_str().into(),
        target.as_str().into(),
        method_name(method).into(),
    ]);
    cells
}

/// The bytes of `confounding.csv`.
pub fn confounding_csv(a: &Analysis) -> Vec<u8> {
    let c = &a.confounding;
    let rows = c.control.iter().map(control_row);
    csv_bytes(
        &CONFOUNDING_HEADER,
        rows.chain(c.rows.iter().map(controlled_row)),
    )
}

fn control_row(c: &ControlRow) -> Vec<String> {
    let mut row = test_cells(&c.key, CONTROL, c.scope, c.target, Method::Pearson);
    row.extend([String::new(), String::new()]);
    row.extend(result_cells(&c.result, None));
    row
}

fn controlled_row(c: &ControlledRow) -> Vec<String> {
    let r = |t: &Result<Correlation, NotComputable>| t.as_ref().map_or(String::new(), |t| num(t.r));
    let method = Method::PartialPearson;
    let mut row = test_cells(&c.key, c.metric.name(), c.scope, c.target, method);
    row.extend([r(&c.plain), r(&c.with_control)]);
    row.extend(result_cells(&c.partial, c.q));
    row
}

/// The bytes of `trends.csv`.
pub fn trends_csv(a: &Analysis) -> Vec<u8> {
    csv_bytes(&TRENDS_HEADER, a.trends.iter().map(trend_row))
}

fn trend_row(t: &TrendRow) -> Vec<String> {
    let join = |f: &dyn Fn(&(String, usize, f64)) -> String| {
        t.points.iter().map(f).collect::<Vec<_>>().join(";")
    };
    let mut row = vec![
        t.axis.as_str().into(),
        t.line.name().into(),
        t.line.sha256().into(),
        t.kind.to_string(),
        t.spectrum.to_string(),
        t.metric.to_string(),
        join(&|b| b.0.clone()),
        join(&|b| num(b.2)),
    ];
    row.extend(result_cells(&t.result, t.q));
    row.push("spearman".into());
    row
}
