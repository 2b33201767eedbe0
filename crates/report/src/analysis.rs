//! Correlation tests (across labels, across samples), depth trends and the
//! Benjamini-Hochberg correction over the whole family of tests.

use crate::aggregate::{
    aggregate, by_label, group, label_performance, values, Aggregate, GroupKey, Groups, ModelPerf,
};
use crate::confound::{confounding, Confounding};
use crate::dataset::{Dataset, ModelId};
use crate::error::Error;
use crate::metric::Metric;
use std::collections::BTreeMap;
use stiffness_records::{JacobianKind, Record, SpectrumVariant};
use stiffness_stats::{
    benjamini_hochberg, pearson, point_biserial, spearman, summarize, Correlation, Method,
    NotComputable,
};

/// What a correlation is computed across.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Per-label metric means vs per-label accuracy / loss.
    Labels,
    /// Per-sample metric vs per-sample loss / correctness.
    Samples,
}

/// What the metric is correlated with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    /// Per-label accuracy.
    Accuracy,
    /// Cross-entropy loss (per label mean, or per sample).
    Loss,
    /// Per-sample correctness (0/1).
    Correct,
}

impl Scope {
    /// "labels" or "samples".
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Labels => "labels",
            Scope::Samples => "samples",
        }
    }
}

impl Target {
    /// "accuracy", "loss" or "correct".
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Accuracy => "accuracy",
            Target::Loss => "loss",
            Target::Correct => "correct",
        }
    }
}

/// The short name of a correlation method for tables.
pub fn method_name(m: Method) -> &'static str {
    match m {
        Method::Pearson => "pearson",
        Method::Spearman => "spearman",
        Method::PointBiserial => "point_biserial",
        Method::PartialPearson => "partial_pearson",
    }
}

/// One correlation test.
#[derive(Clone, Debug, PartialEq)]
pub struct CorrelationRow {
    /// The (model, block, kind, variant).
    pub key: GroupKey,
    /// The metric.
    pub metric: Metric,
    /// Across labels or samples.
    pub scope: Scope,
    /// Correlated with what.
    pub target: Target,
    /// Which coefficient.
    pub method: Method,
    /// The result or why there is none.
    pub result: Result<Correlation, NotComputable>,
    /// Benjamini-Hochberg q over the report's family; `None` if not computed.
    pub q: Option<f64>,
}

/// What a trend runs along.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Axis {
    /// The blocks of one model in depth order.
    Depth,
    /// The checkpoints of one training run in training order (the record
    /// directories in the order given), for one block.
    Training,
}

impl Axis {
    /// "depth" or "training".
    pub fn as_str(self) -> &'static str {
        match self {
            Axis::Depth => "depth",
            Axis::Training => "training",
        }
    }
}

/// What stays fixed along a trend: the model (depth) or the block (training).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Line {
    /// A depth trend's model.
    Model(ModelId),
    /// A training trend's block: 0-based depth and name.
    Block(usize, String),
}

impl Line {
    /// Legend text: the model's stem with its short hash, or the block.
    pub fn label(&self) -> String {
        match self {
            Line::Model(m) => format!("{} [{}]", m.name, m.short_hash()),
            Line::Block(_, b) => b.clone(),
        }
    }

    /// The model's file stem or the block's name.
    pub fn name(&self) -> &str {
        match self {
            Line::Model(m) => &m.name,
            Line::Block(_, b) => b,
        }
    }

    /// The model's SHA-256, empty for a block.
    pub fn sha256(&self) -> &str {
        match self {
            Line::Model(m) => &m.sha256,
            Line::Block(..) => "",
        }
    }
}

/// Trend of a metric's mean (over all samples) along an [`Axis`]: Spearman
/// rho between the mean and the position.
#[derive(Clone, Debug, PartialEq)]
pub struct TrendRow {
    /// Depth or training.
    pub axis: Axis,
    /// The model (depth) or block (training) the trend is about.
    pub line: Line,
    /// Jacobian kind.
    pub kind: JacobianKind,
    /// Spectrum variant.
    pub spectrum: SpectrumVariant,
    /// The metric.
    pub metric: Metric,
    /// (name, 0-based position, mean over all samples; NaN when undefined)
    /// in axis order: (block, block index) or (checkpoint, its position).
    pub points: Vec<(String, usize, f64)>,
    /// Spearman rho of mean vs position.
    pub result: Result<Correlation, NotComputable>,
    /// Benjamini-Hochberg q over the report's family.
    pub q: Option<f64>,
}

/// Everything computed from a [`Dataset`].
#[derive(Clone, Debug)]
pub struct Analysis {
    /// Record indices per group.
    pub groups: Groups,
    /// Per-group, per-label (and all-label) metric summaries.
    pub aggregates: Vec<Aggregate>,
    /// Per-label accuracy and loss per model.
    pub performance: BTreeMap<ModelId, ModelPerf>,
    /// All correlation tests.
    pub correlations: Vec<CorrelationRow>,
    /// All trend tests: depth, then training (when asked for).
    pub trends: Vec<TrendRow>,
    /// The checkpoints in training order; empty unless the report is
    /// across training.
    pub checkpoints: Vec<ModelId>,
    /// The tests given the share of active outputs (their own BH family).
    pub confounding: Confounding,
}

impl Analysis {
    /// Runs every aggregation and test; q-values are adjusted over the
    /// correlations and trends together. With `across_training`, the models
    /// are the checkpoints of one run in the order of their directories
    /// ([`Dataset::models_in_order`]) and every block also gets training
    /// trends; that needs at least two models.
    pub fn new(data: &Dataset, across_training: bool) -> Result<Self, Error> {
        let checkpoints = if across_training {
            training_order(data)?
        } else {
            Vec::new()
        };
        let groups = group(data);
        let aggregates = aggregate(data, &groups);
        let performance = label_performance(data);
        let mut correlations = Vec::new();
        for (key, idx) in &groups {
            correlations.extend(group_correlations(data, key, idx, &performance[&key.model]));
        }
        let mut trends = trends_along(&aggregates, Axis::Depth, &checkpoints);
        if !checkpoints.is_empty() {
            trends.extend(trends_along(&aggregates, Axis::Training, &checkpoints));
        }
        apply_bh(&mut correlations, &mut trends);
        let confounding = confounding(data, &groups, &performance);
        Ok(Self {
            groups,
            aggregates,
            performance,
            correlations,
            trends,
            checkpoints,
            confounding,
        })
    }

    /// The all-label aggregate of `metric` in group `key`.
    pub fn overall(&self, key: &GroupKey, metric: Metric) -> Option<&Aggregate> {
        self.aggregates
            .iter()
            .find(|a| a.label.is_none() && a.metric == metric && &a.key == key)
    }

    /// The test of `metric` in group `key` with the given scope, target
    /// and method, if it was run.
    pub fn find(
        &self,
        key: &GroupKey,
        metric: Metric,
        scope: Scope,
        target: Target,
        method: Method,
    ) -> Option<&CorrelationRow> {
        self.correlations.iter().find(|c| {
            &c.key == key
                && c.metric == metric
                && c.scope == scope
                && c.target == target
                && c.method == method
        })
    }

    /// The number of tests with a p-value (the BH family size).
    pub fn family_size(&self) -> usize {
        self.correlations.iter().filter(|c| c.q.is_some()).count()
            + self.trends.iter().filter(|t| t.q.is_some()).count()
    }
}

fn group_correlations(
    data: &Dataset,
    key: &GroupKey,
    idx: &[usize],
    perf: &ModelPerf,
) -> Vec<CorrelationRow> {
    let mut out = Vec::new();
    for metric in Metric::ALL {
        if values(&data.records, idx, metric).is_empty() {
            continue;
        }
        let row = |scope, target, method, result| CorrelationRow {
            key: key.clone(),
            metric,
            scope,
            target,
            method,
            result,
            q: None,
        };
        let (x, acc, loss) = label_vectors(data, idx, metric, perf);
        for (target, y) in [(Target::Accuracy, &acc), (Target::Loss, &loss)] {
            out.push(row(
                Scope::Labels,
                target,
                Method::Pearson,
                representative(pearson(&x, y)),
            ));
            out.push(row(
                Scope::Labels,
                target,
                Method::Spearman,
                representative(spearman(&x, y)),
            ));
        }
        let (x, loss, correct) = sample_vectors(data, idx, metric);
        out.push(row(
            Scope::Samples,
            Target::Loss,
            Method::Pearson,
            representative(pearson(&x, &loss)),
        ));
        out.push(row(
            Scope::Samples,
            Target::Loss,
            Method::Spearman,
            representative(spearman(&x, &loss)),
        ));
        let pb = representative(point_biserial(&correct, &x));
        out.push(row(
            Scope::Samples,
            Target::Correct,
            Method::PointBiserial,
            pb,
        ));
    }
    out
}

/// Least share of finite pairs for a test to be reported. Non-finite
/// metric values are not missing at random (an exact zero eigenvalue makes
/// the stiffness index +inf), so when most pairs are excluded the finite
/// rest is a selection, not a sample: a test on the 3 finite of 668
/// samples says nothing about the 668, yet its p can pass the correction.
const MIN_FINITE_SHARE: f64 = 0.5;

/// `result`, unless its finite pairs (n >= 3) are fewer than
/// [`MIN_FINITE_SHARE`] of all pairs: then not computable, whatever the
/// test found (with n < 3 the test's own reason stands).
pub(crate) fn representative(
    result: Result<Correlation, NotComputable>,
) -> Result<Correlation, NotComputable> {
    let (n, excluded) = match &result {
        Ok(c) => (c.n, c.excluded),
        Err(e) => (e.n, e.excluded),
    };
    let total = n + excluded;
    if n < 3 || n as f64 >= MIN_FINITE_SHARE * total as f64 {
        return result;
    }
    Err(NotComputable {
        n,
        excluded,
        reason: format!(
            "only {n} of {total} pairs finite: the {excluded} with inf/NaN are not missing at \
             random, so the finite ones are a selection, not a sample"
        ),
    })
}

/// Across labels: (per-label metric mean, accuracy, loss), one entry per
/// label present in the group that has a performance entry. A label whose
/// values are all non-finite gets NaN (excluded and counted by the test).
pub fn label_vectors(
    data: &Dataset,
    idx: &[usize],
    metric: Metric,
    perf: &ModelPerf,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    label_vectors_of(data, idx, perf, |r| metric.value(r))
}

/// [`label_vectors`] of any per-record value (`None` where it does not apply).
pub fn label_vectors_of(
    data: &Dataset,
    idx: &[usize],
    perf: &ModelPerf,
    value: impl Fn(&Record) -> Option<f64>,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (mut x, mut acc, mut loss) = (Vec::new(), Vec::new(), Vec::new());
    for (label, (_, sub)) in by_label(&data.records, idx) {
        let Some(p) = perf.get(label) else { continue };
        let v: Vec<f64> = sub
            .iter()
            .filter_map(|&i| value(&data.records[i]))
            .collect();
        x.push(summarize(&v).map_or(f64::NAN, |s| s.mean));
        acc.push(p.accuracy);
        loss.push(p.loss);
    }
    (x, acc, loss)
}

/// Across samples: (metric, loss, correct) per record where the metric applies.
pub fn sample_vectors(
    data: &Dataset,
    idx: &[usize],
    metric: Metric,
) -> (Vec<f64>, Vec<f64>, Vec<bool>) {
    sample_vectors_of(data, idx, |r| metric.value(r))
}

/// [`sample_vectors`] of any per-record value (`None` where it does not apply).
pub fn sample_vectors_of(
    data: &Dataset,
    idx: &[usize],
    value: impl Fn(&Record) -> Option<f64>,
) -> (Vec<f64>, Vec<f64>, Vec<bool>) {
    let (mut x, mut loss, mut correct) = (Vec::new(), Vec::new(), Vec::new());
    for &i in idx {
        let r = &data.records[i];
        if let Some(v) = value(r) {
            x.push(v);
            loss.push(r.loss);
            correct.push(r.correct);
        }
    }
    (x, loss, correct)
}

/// The models of `data` as checkpoints in training order; an error unless
/// there are at least two.
fn training_order(data: &Dataset) -> Result<Vec<ModelId>, Error> {
    let order = data.models_in_order();
    if order.len() < 2 {
        return Err(Error::Invalid(format!(
            "a report across training needs the records of at least two checkpoints (one record directory per checkpoint, in training order); the given directories hold {} model(s)",
            order.len()
        )));
    }
    Ok(order)
}

/// Where group `k` sits on a trend along `axis`: its line, its point's name
/// and the point's position: (its model; block, block index) along depth,
/// (its block; model, position in `checkpoints`) along training, `None`
/// when the model is not one of the checkpoints.
pub fn place(axis: Axis, checkpoints: &[ModelId], k: &GroupKey) -> Option<(Line, String, usize)> {
    match axis {
        Axis::Depth => Some((Line::Model(k.model.clone()), k.block.clone(), k.block_index)),
        Axis::Training => {
            let position = checkpoints.iter().position(|m| m == &k.model)?;
            let line = Line::Block(k.block_index, k.block.clone());
            Some((line, k.model.name.clone(), position))
        }
    }
}

/// The trends along `axis` of every (line, kind, variant, metric): the
/// all-label means placed by [`place`], in position order, tested with
/// Spearman's rho against the position.
fn trends_along(aggregates: &[Aggregate], axis: Axis, checkpoints: &[ModelId]) -> Vec<TrendRow> {
    type TrendKey = (Line, JacobianKind, SpectrumVariant, Metric);
    let mut series: BTreeMap<TrendKey, Vec<(String, usize, f64)>> = BTreeMap::new();
    for a in aggregates.iter().filter(|a| a.label.is_none()) {
        let k = &a.key;
        let Some((line, name, position)) = place(axis, checkpoints, k) else {
            continue;
        };
        let mean = a.summary.map_or(f64::NAN, |s| s.mean);
        series
            .entry((line, k.kind, k.spectrum, a.metric))
            .or_default()
            .push((name, position, mean));
    }
    series
        .into_iter()
        .map(|((line, kind, spectrum, metric), mut points)| {
            points.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
            let x: Vec<f64> = points.iter().map(|p| p.1 as f64).collect();
            let means: Vec<f64> = points.iter().map(|p| p.2).collect();
            TrendRow {
                axis,
                line,
                kind,
                spectrum,
                metric,
                result: representative(spearman(&x, &means)),
                points,
                q: None,
            }
        })
        .collect()
}

fn apply_bh(correlations: &mut [CorrelationRow], trends: &mut [TrendRow]) {
    let p_of = |r: &Result<Correlation, NotComputable>| r.as_ref().ok().map(|c| c.p);
    let mut p: Vec<Option<f64>> = correlations.iter().map(|c| p_of(&c.result)).collect();
    p.extend(trends.iter().map(|t| p_of(&t.result)));
    let q = benjamini_hochberg(&p);
    let (qc, qt) = q.split_at(correlations.len());
    for (c, q) in correlations.iter_mut().zip(qc) {
        c.q = *q;
    }
    for (t, q) in trends.iter_mut().zip(qt) {
        t.q = *q;
    }
}
