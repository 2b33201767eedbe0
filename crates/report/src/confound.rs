//! Output-ReLU activity as a confounder. A square block's output ReLU
//! zeroes the rows of its inactive outputs, so the share of active outputs
//! a / n shapes every spectrum of the block: each inactive output is an
//! exact zero eigenvalue of J_B, and a zero H x W slice of the
//! paper-compatible spectrum. That share itself varies with the label and
//! with the loss, so a metric that correlates with accuracy may say nothing
//! beyond it. These tests answer that: the partial Pearson r of a metric
//! with accuracy or loss given the active share, across labels (per-label
//! means) and across samples.
//!
//! The active share of a (sample, block) is `n_active / n_out` of the
//! block-kind exact record (the active outputs a of the reduction, METHOD.md
//! section 5), so the tests need `--jacobian block` with the exact
//! spectrum; they cover every square group of a block that has it.

use crate::aggregate::{GroupKey, Groups, ModelPerf};
use crate::analysis::{
    label_vectors_of, representative, sample_vectors_of, Analysis, Scope, Target,
};
use crate::dataset::{Dataset, ModelId};
use crate::doc::Block;
use crate::figures::{pval, short};
use crate::metric::Metric;
use std::collections::BTreeMap;
use stiffness_records::{JacobianKind, Record, SpectrumVariant};
use stiffness_stats::{benjamini_hochberg, partial_pearson, pearson, Correlation, NotComputable};

/// The name of the control variable in tables.
pub const CONTROL: &str = "active_share";

/// The metrics tested given the control.
const METRICS: [Metric; 4] = [
    Metric::StiffnessIndex,
    Metric::NegShare,
    Metric::SpectralRadius,
    Metric::Soderlind,
];

/// The (scope, target) pairs tested.
const TESTS: [(Scope, Target); 3] = [
    (Scope::Labels, Target::Accuracy),
    (Scope::Labels, Target::Loss),
    (Scope::Samples, Target::Loss),
];

/// A metric against a target, with and without the control.
#[derive(Clone, Debug, PartialEq)]
pub struct ControlledRow {
    /// The (model, block, kind, variant).
    pub key: GroupKey,
    /// The metric.
    pub metric: Metric,
    /// Across labels or samples.
    pub scope: Scope,
    /// Accuracy or loss.
    pub target: Target,
    /// Pearson r of the metric with the target, on the pairs that have the control.
    pub plain: Result<Correlation, NotComputable>,
    /// Pearson r of the metric with the control.
    pub with_control: Result<Correlation, NotComputable>,
    /// Partial Pearson r of the metric with the target given the control.
    pub partial: Result<Correlation, NotComputable>,
    /// Benjamini-Hochberg q of `partial` over the partial tests of the report
    /// (their own family, apart from the main one).
    pub q: Option<f64>,
}

/// The control against a target: Pearson r of a block's active share with
/// accuracy or loss.
#[derive(Clone, Debug, PartialEq)]
pub struct ControlRow {
    /// The block-kind exact group of the block, whose records give the share.
    pub key: GroupKey,
    /// Across labels or samples.
    pub scope: Scope,
    /// Accuracy or loss.
    pub target: Target,
    /// The test.
    pub result: Result<Correlation, NotComputable>,
}

/// Every test of the control and given the control.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Confounding {
    /// The control's own correlations, per block that has it.
    pub control: Vec<ControlRow>,
    /// The metrics given the control, per square group of those blocks.
    pub rows: Vec<ControlledRow>,
}

/// The share of active outputs per sample, per (model, block index), from
/// the block-kind exact records of square blocks.
type Shares = BTreeMap<(ModelId, usize), BTreeMap<usize, f64>>;

/// The [`Shares`] of the records of `groups`.
fn active_shares(data: &Dataset, groups: &Groups) -> Shares {
    let mut shares = Shares::new();
    for (key, idx) in groups {
        if key.kind != JacobianKind::Block || key.spectrum != SpectrumVariant::Exact {
            continue;
        }
        for &i in idx {
            let r = &data.records[i];
            if let (Some(a), true, true) = (r.n_active, r.square, r.n_out > 0) {
                let share = a as f64 / r.n_out as f64;
                shares
                    .entry((key.model.clone(), key.block_index))
                    .or_default()
                    .insert(r.sample, share);
            }
        }
    }
    shares
}

/// Runs every test of [`Confounding`].
pub fn confounding(
    data: &Dataset,
    groups: &Groups,
    performance: &BTreeMap<ModelId, ModelPerf>,
) -> Confounding {
    let shares = active_shares(data, groups);
    let mut out = Confounding::default();
    for (key, idx) in groups {
        let Some(block_shares) = shares.get(&(key.model.clone(), key.block_index)) else {
            continue;
        };
        let share = |r: &Record| block_shares.get(&r.sample).copied();
        if !idx.iter().any(|&i| share(&data.records[i]).is_some()) {
            continue;
        }
        let perf = &performance[&key.model];
        if key.kind == JacobianKind::Block && key.spectrum == SpectrumVariant::Exact {
            for (scope, target) in TESTS {
                let [z, y] = vectors(data, idx, perf, scope, target, &share, &share);
                out.control.push(ControlRow {
                    key: key.clone(),
                    scope,
                    target,
                    result: representative(pearson(&z, &y)),
                });
            }
        }
        for metric in METRICS {
            let value = |r: &Record| metric.value(r);
            if !idx.iter().any(|&i| value(&data.records[i]).is_some()) {
                continue;
            }
            for (scope, target) in TESTS {
                let [x, y] = vectors(data, idx, perf, scope, target, &value, &share);
                let [z, _] = vectors(data, idx, perf, scope, target, &share, &value);
                out.rows.push(ControlledRow {
                    key: key.clone(),
                    metric,
                    scope,
                    target,
                    plain: representative(pearson(&x, &y)),
                    with_control: representative(pearson(&x, &z)),
                    partial: representative(partial_pearson(&x, &y, &z)),
                    q: None,
                });
            }
        }
    }
    let p: Vec<Option<f64>> = out
        .rows
        .iter()
        .map(|r| r.partial.as_ref().ok().map(|c| c.p))
        .collect();
    for (row, q) in out.rows.iter_mut().zip(benjamini_hochberg(&p)) {
        row.q = q;
    }
    out
}

/// [values of `value`, target] across labels (per-label means) or samples,
/// over the records of `idx` where both `value` and `present` apply, so
/// that vectors built with the roles swapped pair up entry by entry.
fn vectors(
    data: &Dataset,
    idx: &[usize],
    perf: &ModelPerf,
    scope: Scope,
    target: Target,
    value: &dyn Fn(&Record) -> Option<f64>,
    present: &dyn Fn(&Record) -> Option<f64>,
) -> [Vec<f64>; 2] {
    let both = |r: &Record| present(r).and(value(r));
    match scope {
        Scope::Labels => {
            let (x, acc, loss) = label_vectors_of(data, idx, perf, both);
            [
                x,
                if target == Target::Accuracy {
                    acc
                } else {
                    loss
                },
            ]
        }
        Scope::Samples => {
            let (x, loss, _) = sample_vectors_of(data, idx, both);
            [x, loss]
        }
    }
}

/// The columns of the section's table.
const HEADER: [&str; 13] = [
    "model",
    "block",
    "kind",
    "spectrum",
    "metric",
    "scope",
    "target",
    "n",
    "r",
    "r with active share",
    "partial r",
    "95% CI (partial)",
    "p (partial)",
];

/// The section "Output-ReLU activity as a confounder": the control's own
/// correlations and, for the last square block of each model (the paper's
/// block), the stiffness index and negative share given the control.
/// Empty when no block has the control.
pub fn section(a: &Analysis, alpha: f64) -> Vec<Block> {
    let c = &a.confounding;
    if c.control.is_empty() {
        return Vec::new();
    }
    let last: Vec<GroupKey> = a
        .performance
        .keys()
        .flat_map(|m| crate::paper::last_block(a, m))
        .collect();
    let rows: Vec<Vec<String>> = c
        .rows
        .iter()
        .filter(|r| {
            last.contains(&r.key) && matches!(r.metric, Metric::StiffnessIndex | Metric::NegShare)
        })
        .map(|r| table_row(r, alpha))
        .collect();
    let control: Vec<String> = c
        .control
        .iter()
        .filter(|r| {
            last.iter()
                .any(|k| k.model == r.key.model && k.block_index == r.key.block_index)
        })
        .map(|r| {
            let what = format!(
                "{} {}: r({CONTROL}, {}) across {}",
                r.key.model.name,
                r.key.block,
                r.target.as_str(),
                r.scope.as_str()
            );
            match &r.result {
                Ok(t) => format!(
                    "{what} = {} [{}, {}], n = {}, p = {}",
                    short(t.r),
                    short(t.ci_low),
                    short(t.ci_high),
                    t.n,
                    pval(t.p)
                ),
                Err(e) => format!("{what}: not computable: {}", e.reason),
            }
        })
        .collect();
    vec![
        Block::Heading(2, "Output-ReLU activity as a confounder".into()),
        Block::Para(format!(
            "A block's output ReLU zeroes the rows of its inactive outputs: each is an exact zero \
             eigenvalue of J_B and a zero H x W slice of the paper-compatible spectrum, so the \
             share of active outputs ({CONTROL} = a / n, from the block-kind exact records) \
             shapes every spectrum of the block. When {CONTROL} itself correlates with accuracy \
             or loss, a stiffness metric may say nothing beyond it. The partial Pearson r below \
             is the correlation of the metric with the target once both are adjusted linearly \
             for {CONTROL} (t test with n - 3 df, Fisher-z interval with se = 1/sqrt(n - 4)); a \
             significant plain r that vanishes here is explained by output-ReLU activity. \
             Benjamini-Hochberg q over the {} partial tests of confounding.csv (all square \
             groups, also spectral radius and Söderlind), a family of its own; alpha = {alpha}.",
            c.rows.iter().filter(|r| r.q.is_some()).count()
        )),
        Block::List(control),
        Block::Table(HEADER.iter().map(|s| s.to_string()).collect(), rows),
    ]
}

fn table_row(r: &ControlledRow, alpha: f64) -> Vec<String> {
    let coefficient = |t: &Result<Correlation, NotComputable>| match t {
        Ok(c) => short(c.r),
        Err(_) => "–".into(),
    };
    let mut cells = r.key.table_cells();
    cells.extend([
        r.metric.to_string(),
        r.scope.as_str().into(),
        r.target.as_str().into(),
    ]);
    match &r.partial {
        Ok(c) => cells.extend([
            c.n.to_string(),
            coefficient(&r.plain),
            coefficient(&r.with_control),
            short(c.r),
            format!("[{}, {}]", short(c.ci_low), short(c.ci_high)),
            match r.q {
                Some(q) if q < alpha => format!("{} (q = {}, significant)", pval(c.p), pval(q)),
                Some(q) => format!("{} (q = {})", pval(c.p), pval(q)),
                None => pval(c.p),
            },
        ]),
        Err(e) => cells.extend([
            e.n.to_string(),
            coefficient(&r.plain),
            coefficient(&r.with_control),
            format!("not computable: {}", e.reason),
        ]),
    }
    cells.resize(HEADER.len(), String::new());
    cells
}
