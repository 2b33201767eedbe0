//! Builds the report's figures from an [`Analysis`] and renders them.

use crate::aggregate::GroupKey;
use crate::analysis::{label_vectors, place, Analysis, Axis, Scope, Target};
use crate::dataset::Dataset;
use crate::error::Result;
use crate::figures::scatter_stat;
use crate::figures::{
    render, slug, EigenFigure, Figure, HeatCell, HeatmapFigure, ScatterFigure, ScatterPanel,
    TrendFigure, TrendPoint, TrendSeries,
};
use crate::metric::Metric;
use crate::ReportOptions;
use std::collections::BTreeSet;
use std::path::Path;
use stiffness_records::{JacobianKind, Record, SpectrumVariant};
use stiffness_stats::Method;

/// A rendered figure: its stem, caption and SVG text.
#[derive(Clone, Debug, PartialEq)]
pub struct Rendered {
    /// Which figure type.
    pub section: FigureType,
    /// File stem under `figures/`.
    pub stem: String,
    /// Caption.
    pub caption: String,
    /// The SVG document.
    pub svg: String,
}

/// The figure types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FigureType {
    /// Metric vs depth.
    Depth,
    /// Metric across training (reports across training only).
    Training,
    /// Eigenvalues in the complex plane.
    Eigen,
    /// Per-label scatter.
    Scatter,
    /// Correlation heat map.
    Heatmap,
}

/// The (kind, variant) combinations present, sorted.
pub fn variants(a: &Analysis) -> Vec<(JacobianKind, SpectrumVariant)> {
    let set: BTreeSet<_> = a.groups.keys().map(|k| (k.kind, k.spectrum)).collect();
    set.into_iter().collect()
}

/// The metrics among `metrics` with at least one finite mean in the groups
/// matching (kind, variant).
pub fn metrics_with_data(
    a: &Analysis,
    kind: JacobianKind,
    variant: SpectrumVariant,
    metrics: &[Metric],
) -> Vec<Metric> {
    metrics
        .iter()
        .copied()
        .filter(|&m| {
            a.aggregates.iter().any(|g| {
                g.label.is_none()
                    && g.metric == m
                    && g.key.kind == kind
                    && g.key.spectrum == variant
                    && g.summary.is_some()
            })
        })
        .collect()
}

fn emit(
    fig: &impl Figure,
    section: FigureType,
    caption: String,
    dir: &Path,
    out: &mut Vec<Rendered>,
) -> Result<()> {
    let svg = render(fig, dir)?;
    out.push(Rendered {
        section,
        stem: fig.stem(),
        caption,
        svg,
    });
    Ok(())
}

/// Renders every figure into `dir`; returns them and notes on skipped ones.
pub fn all_figures(
    data: &Dataset,
    a: &Analysis,
    opt: &ReportOptions,
    dir: &Path,
) -> Result<(Vec<Rendered>, Vec<String>)> {
    let (mut out, mut notes) = (Vec::new(), Vec::new());
    trend_figures(a, opt, Axis::Depth, dir, &mut out)?;
    trend_figures(a, opt, Axis::Training, dir, &mut out)?;
    eigen_figures(data, opt, dir, &mut out, &mut notes)?;
    scatter_figures(data, a, opt, dir, &mut out)?;
    heatmaps(a, opt, dir, &mut out)?;
    Ok((out, notes))
}

/// Metric along `axis`, one figure per (kind, variant, key metric): against
/// depth with one line per model, or across training (reports across
/// training only) with one line per block.
fn trend_figures(
    a: &Analysis,
    opt: &ReportOptions,
    axis: Axis,
    dir: &Path,
    out: &mut Vec<Rendered>,
) -> Result<()> {
    if axis == Axis::Training && a.checkpoints.is_empty() {
        return Ok(());
    }
    let (section, title, x_label, lines) = match axis {
        Axis::Depth => (
            FigureType::Depth,
            "by depth",
            "block depth (0-based block index)",
            "one line per model",
        ),
        Axis::Training => (
            FigureType::Training,
            "across training",
            "checkpoint (training order)",
            "one line per block; the checkpoints equally spaced in the order given",
        ),
    };
    let x_names = match axis {
        Axis::Depth => Vec::new(),
        Axis::Training => a.checkpoints.iter().map(|m| m.name.clone()).collect(),
    };
    for (kind, variant) in variants(a) {
        for metric in metrics_with_data(a, kind, variant, &opt.key_metrics) {
            let fig = TrendFigure {
                stem: format!("{}_{kind}_{variant}_{metric}", axis.as_str()),
                title: format!("{metric} {title}: {kind} Jacobian, {variant} spectrum"),
                x_label: x_label.into(),
                x_names: x_names.clone(),
                y_label: metric.label().to_string(),
                series: trend_series(a, kind, variant, metric, axis),
            };
            let caption = format!(
                "{metric} {title} ({kind} Jacobian, {variant} spectrum): mean over the analysed samples with its 95% t-interval; {lines}; non-finite values excluded (counts in aggregates.csv)."
            );
            emit(&fig, section, caption, dir, out)?;
        }
    }
    Ok(())
}

/// The lines of a trend figure along `axis`: every all-label aggregate of
/// (kind, variant, metric) with a summary, on its line and at its position
/// ([`place`]); lines in order of first appearance, points in position
/// order.
fn trend_series(
    a: &Analysis,
    kind: JacobianKind,
    variant: SpectrumVariant,
    metric: Metric,
    axis: Axis,
) -> Vec<TrendSeries> {
    let mut series: Vec<TrendSeries> = Vec::new();
    for g in a.aggregates.iter().filter(|g| {
        g.label.is_none() && g.metric == metric && g.key.kind == kind && g.key.spectrum == variant
    }) {
        let placed = place(axis, &a.checkpoints, &g.key);
        let (Some(s), Some((line, _, x))) = (g.summary, placed) else {
            continue;
        };
        let point = TrendPoint {
            x,
            mean: s.mean,
            low: s.ci_low.unwrap_or(s.mean),
            high: s.ci_high.unwrap_or(s.mean),
        };
        let name = line.label();
        match series.iter_mut().find(|l| l.name == name) {
            Some(l) => l.points.push(point),
            None => series.push(TrendSeries {
                name,
                points: vec![point],
            }),
        }
    }
    for line in &mut series {
        line.points.sort_by_key(|p| p.x);
    }
    series
}

/// The records shown in the eigenvalue figure: the chosen sample and block
/// of the first model, every kind and variant.
pub fn eigen_choice<'a>(data: &'a Dataset, opt: &ReportOptions) -> Vec<(usize, &'a Record)> {
    let Some(model) = data.models().into_iter().next() else {
        return Vec::new();
    };
    let of_model = || {
        data.records
            .iter()
            .enumerate()
            .filter(|(_, r)| r.model_sha256 == model.sha256)
    };
    let sample = opt
        .eigen_sample
        .or_else(|| of_model().map(|(_, r)| r.sample).min());
    let block = opt.eigen_block.clone().or_else(|| {
        of_model()
            .filter(|(_, r)| r.square)
            .max_by_key(|(_, r)| r.block_index)
            .map(|(_, r)| r.block.clone())
    });
    of_model()
        .filter(|(_, r)| Some(r.sample) == sample && Some(&r.block) == block.as_ref())
        .collect()
}

fn eigen_figures(
    data: &Dataset,
    opt: &ReportOptions,
    dir: &Path,
    out: &mut Vec<Rendered>,
    notes: &mut Vec<String>,
) -> Result<()> {
    let chosen = eigen_choice(data, opt);
    if chosen.iter().all(|(_, r)| r.eigenvalues_file.is_none()) {
        notes.push("Eigenvalue figure skipped: the chosen sample and block have no eigenvalue files (run the analysis with eigenvalue output).".into());
        return Ok(());
    }
    for (i, r) in chosen {
        let Some(file) = &r.eigenvalues_file else {
            continue;
        };
        let path = data.dir_of(i).join(file);
        let eigenvalues = match stiffness_records::store::read_eigenvalues(&path) {
            Ok(v) => v,
            Err(e) => {
                notes.push(format!(
                    "Eigenvalue figure for {} {} skipped: {e}",
                    r.block, r.kind
                ));
                continue;
            }
        };
        let euler = r.kind == JacobianKind::Residual && r.spectrum == SpectrumVariant::Exact;
        let fig = EigenFigure {
            stem: slug(&format!(
                "eigs_{}_{}_s{}_{}_{}",
                r.model, r.block, r.sample, r.kind, r.spectrum
            )),
            title: format!(
                "{} sample {} (label {}): {} {} Jacobian, {}",
                r.model, r.sample, r.label_name, r.block, r.kind, r.spectrum
            ),
            eigenvalues,
            euler_disk: euler,
        };
        let caption = eigen_caption(r, euler);
        emit(&fig, FigureType::Eigen, caption, dir, out)?;
    }
    Ok(())
}

fn eigen_caption(r: &Record, euler: bool) -> String {
    let disk = if euler {
        " The shaded disk |1 + λ| ≤ 1 is the stability region of forward Euler with h = 1; eigenvalues of J_F outside it are Euler-unstable modes."
    } else {
        ""
    };
    format!(
        "Eigenvalues of the {} Jacobian ({} spectrum) of block {} at sample {} of model {} [{}], n = {} values, from {}.{disk}",
        r.kind,
        r.spectrum,
        r.block,
        r.sample,
        r.model,
        &r.model_sha256[..r.model_sha256.len().min(12)],
        r.n,
        r.eigenvalues_file.as_deref().unwrap_or("-")
    )
}

fn scatter_figures(
    data: &Dataset,
    a: &Analysis,
    opt: &ReportOptions,
    dir: &Path,
    out: &mut Vec<Rendered>,
) -> Result<()> {
    for model in data.models() {
        for (kind, variant) in variants(a) {
            for metric in metrics_with_data(a, kind, variant, &opt.key_metrics) {
                for target in [Target::Accuracy, Target::Loss] {
                    let keys: Vec<&GroupKey> = a
                        .groups
                        .keys()
                        .filter(|k| k.model == model && k.kind == kind && k.spectrum == variant)
                        .collect();
                    let panels = scatter_panels(data, a, &keys, metric, target);
                    if panels.is_empty() {
                        continue;
                    }
                    let fig = ScatterFigure {
                        stem: slug(&format!(
                            "labels_{}_{kind}_{variant}_{metric}_{}",
                            model.name,
                            target.as_str()
                        )),
                        title: format!(
                            "{} [{}]: per-label {metric} vs {} ({kind}, {variant})",
                            model.name,
                            model.short_hash(),
                            target.as_str()
                        ),
                        x_label: format!("per-label mean {metric}"),
                        y_label: target_label(target),
                        panels,
                    };
                    let caption = format!(
                        "Per-label mean of {metric} ({kind} Jacobian, {variant} spectrum) against per-label {} for model {}, one panel per block; one point per label, least-squares line, Pearson r with its two-sided p and n in the legend.",
                        target.as_str(),
                        model.name
                    );
                    emit(&fig, FigureType::Scatter, caption, dir, out)?;
                }
            }
        }
    }
    Ok(())
}

fn target_label(t: Target) -> String {
    match t {
        Target::Accuracy => "accuracy (fraction correct)".into(),
        Target::Loss => "mean cross-entropy loss (nats)".into(),
        Target::Correct => "correct (0/1)".into(),
    }
}

fn scatter_panels(
    data: &Dataset,
    a: &Analysis,
    keys: &[&GroupKey],
    metric: Metric,
    target: Target,
) -> Vec<ScatterPanel> {
    let perf = |k: &GroupKey| &a.performance[&k.model];
    keys.iter()
        .filter(|k| !crate::aggregate::values(&data.records, &a.groups[*k], metric).is_empty())
        .map(|k| {
            let idx = &a.groups[*k];
            let (x, acc, loss) = label_vectors(data, idx, metric, perf(k));
            let y = if target == Target::Accuracy {
                acc
            } else {
                loss
            };
            ScatterPanel {
                title: k.block.clone(),
                points: x.into_iter().zip(y).collect(),
                stat: scatter_stat(
                    a.find(k, metric, Scope::Labels, target, Method::Pearson)
                        .map(|c| &c.result),
                ),
            }
        })
        .collect()
}

fn heatmaps(a: &Analysis, opt: &ReportOptions, dir: &Path, out: &mut Vec<Rendered>) -> Result<()> {
    let models: BTreeSet<_> = a.groups.keys().map(|k| k.model.clone()).collect();
    for model in models {
        for (kind, variant) in variants(a) {
            let keys: Vec<&GroupKey> = a
                .groups
                .keys()
                .filter(|k| k.model == model && k.kind == kind && k.spectrum == variant)
                .collect();
            let metrics = metrics_with_data(a, kind, variant, &Metric::ALL);
            if keys.is_empty() || metrics.is_empty() {
                continue;
            }
            for target in [Target::Accuracy, Target::Loss] {
                let cells = keys
                    .iter()
                    .map(|k| {
                        metrics
                            .iter()
                            .map(|&m| heat_cell(a, k, m, target, opt.alpha))
                            .collect()
                    })
                    .collect();
                let fig = HeatmapFigure {
                    stem: slug(&format!(
                        "heatmap_{}_{kind}_{variant}_{}",
                        model.name,
                        target.as_str()
                    )),
                    title: format!(
                        "{} [{}]: r(metric, {}) across labels, {kind}, {variant}",
                        model.name,
                        model.short_hash(),
                        target.as_str()
                    ),
                    rows: keys.iter().map(|k| k.block.clone()).collect(),
                    cols: metrics.iter().map(|m| m.to_string()).collect(),
                    cells,
                    alpha: opt.alpha,
                };
                let caption = format!(
                    "Pearson r between the per-label mean of each metric and per-label {} ({kind} Jacobian, {variant} spectrum, model {}); * marks Benjamini-Hochberg q < {} over the report's whole family of tests; n/c = not computable (reason in correlations.csv); – = metric not applicable to the block.",
                    target.as_str(),
                    model.name,
                    opt.alpha
                );
                emit(&fig, FigureType::Heatmap, caption, dir, out)?;
            }
        }
    }
    Ok(())
}

fn heat_cell(a: &Analysis, k: &GroupKey, metric: Metric, target: Target, alpha: f64) -> HeatCell {
    match a.find(k, metric, Scope::Labels, target, Method::Pearson) {
        None => HeatCell::NotApplicable,
        Some(c) => match &c.result {
            Ok(r) => HeatCell::Value(r.r, c.q.is_some_and(|q| q < alpha)),
            Err(_) => HeatCell::NotComputable,
        },
    }
}
