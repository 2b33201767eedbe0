//! Grouping records and per-group, per-label summaries of every metric, and
//! per-label accuracy and loss.

use crate::dataset::{Dataset, ModelId};
use crate::metric::Metric;
use std::collections::BTreeMap;
use stiffness_records::{JacobianKind, Record, SpectrumVariant};
use stiffness_stats::{summarize, Summary};

/// One (model, block, kind, spectrum variant): the unit of aggregation.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupKey {
    /// The model.
    pub model: ModelId,
    /// 0-based block depth (sorts before the name).
    pub block_index: usize,
    /// Block name.
    pub block: String,
    /// Jacobian kind.
    pub kind: JacobianKind,
    /// Spectrum variant.
    pub spectrum: SpectrumVariant,
}

impl GroupKey {
    /// The group of a record.
    pub fn of(r: &Record) -> Self {
        Self {
            model: ModelId::of(r),
            block_index: r.block_index,
            block: r.block.clone(),
            kind: r.kind,
            spectrum: r.spectrum,
        }
    }
}

impl GroupKey {
    /// The group's cells in a report table: model, block, kind, spectrum.
    pub fn table_cells(&self) -> Vec<String> {
        vec![
            self.model.name.clone(),
            self.block.clone(),
            self.kind.to_string(),
            self.spectrum.to_string(),
        ]
    }

    /// The group's cells in a CSV table: model, model_sha256, block,
    /// block_index, kind, spectrum.
    pub fn csv_cells(&self) -> Vec<String> {
        vec![
            self.model.name.clone(),
            self.model.sha256.clone(),
            self.block.clone(),
            self.block_index.to_string(),
            self.kind.to_string(),
            self.spectrum.to_string(),
        ]
    }
}

/// Record indices per group, in the dataset's (deterministic) order.
pub type Groups = BTreeMap<GroupKey, Vec<usize>>;

/// Groups the records of `data`.
pub fn group(data: &Dataset) -> Groups {
    let mut groups = Groups::new();
    for (i, r) in data.records.iter().enumerate() {
        groups.entry(GroupKey::of(r)).or_default().push(i);
    }
    groups
}

/// How the values of one metric in one cell split up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ValueCounts {
    /// Records where the metric applies (not `None`).
    pub present: usize,
    /// Finite values (used).
    pub finite: usize,
    /// +inf values (excluded).
    pub pos_inf: usize,
    /// -inf values (excluded).
    pub neg_inf: usize,
    /// NaN values (excluded).
    pub nan: usize,
}

impl ValueCounts {
    /// Counts `values` (the present ones).
    pub fn of(values: &[f64]) -> Self {
        let mut c = Self {
            present: values.len(),
            ..Self::default()
        };
        for &v in values {
            match v {
                f64::INFINITY => c.pos_inf += 1,
                f64::NEG_INFINITY => c.neg_inf += 1,
                v if v.is_nan() => c.nan += 1,
                _ => c.finite += 1,
            }
        }
        c
    }

    /// Non-finite values excluded.
    pub fn excluded(&self) -> usize {
        self.pos_inf + self.neg_inf + self.nan
    }
}

/// Summary of one metric over the records of one group and one label (or
/// all labels when `label` is `None`).
#[derive(Clone, Debug, PartialEq)]
pub struct Aggregate {
    /// The group.
    pub key: GroupKey,
    /// The label, or `None` for all labels together.
    pub label: Option<usize>,
    /// The label's name ("all" for all labels).
    pub label_name: String,
    /// The metric.
    pub metric: Metric,
    /// Value counts, non-finite ones excluded from `summary`.
    pub counts: ValueCounts,
    /// Mean, median, std, t-interval of the finite values; `None` if none.
    pub summary: Option<Summary>,
}

/// The present values of `metric` over `records[indices]`.
pub fn values(records: &[Record], indices: &[usize], metric: Metric) -> Vec<f64> {
    indices
        .iter()
        .filter_map(|&i| metric.value(&records[i]))
        .collect()
}

/// Aggregates of every applicable metric for every group, first over all
/// labels, then per label.
pub fn aggregate(data: &Dataset, groups: &Groups) -> Vec<Aggregate> {
    let mut out = Vec::new();
    for (key, idx) in groups {
        for metric in Metric::ALL {
            out.extend(aggregate_cell(data, key, None, "all", idx, metric));
            for (label, (name, sub)) in by_label(&data.records, idx) {
                out.extend(aggregate_cell(data, key, Some(label), &name, &sub, metric));
            }
        }
    }
    out
}

fn aggregate_cell(
    data: &Dataset,
    key: &GroupKey,
    label: Option<usize>,
    label_name: &str,
    idx: &[usize],
    metric: Metric,
) -> Option<Aggregate> {
    let v = values(&data.records, idx, metric);
    if v.is_empty() {
        return None;
    }
    Some(Aggregate {
        key: key.clone(),
        label,
        label_name: label_name.to_string(),
        metric,
        counts: ValueCounts::of(&v),
        summary: summarize(&v).ok(),
    })
}

/// Record indices split by label: label -> (label name, indices).
pub fn by_label(records: &[Record], idx: &[usize]) -> BTreeMap<usize, (String, Vec<usize>)> {
    let mut m: BTreeMap<usize, (String, Vec<usize>)> = BTreeMap::new();
    for &i in idx {
        let r = &records[i];
        m.entry(r.label)
            .or_insert_with(|| (r.label_name.clone(), Vec::new()))
            .1
            .push(i);
    }
    m
}

/// Where per-label accuracy and loss come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PerfSource {
    /// `eval.json`: all evaluated images.
    EvalJson,
    /// The records' per-sample fields: analysed samples only.
    Records,
}

impl PerfSource {
    /// A sentence for the report.
    pub fn describe(self) -> &'static str {
        match self {
            PerfSource::EvalJson => "eval.json (all evaluated images of each label)",
            PerfSource::Records => {
                "the records' per-sample loss and correctness (analysed samples only; no eval.json found)"
            }
        }
    }
}

/// Accuracy and mean loss of one label.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelPerf {
    /// The label.
    pub label: usize,
    /// Its name.
    pub name: String,
    /// Fraction correct.
    pub accuracy: f64,
    /// Mean cross-entropy.
    pub loss: f64,
    /// Number of images behind the two numbers.
    pub count: usize,
}

/// Per-label performance of one model.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelPerf {
    /// Where the numbers come from.
    pub source: PerfSource,
    /// One entry per label, sorted by label.
    pub labels: Vec<LabelPerf>,
}

impl ModelPerf {
    /// Accuracy and mean loss over all labels (each label weighted by its
    /// number of images, i.e. over all images), and the number of images.
    pub fn overall(&self) -> (f64, f64, usize) {
        let count: usize = self.labels.iter().map(|l| l.count).sum();
        let total = |f: fn(&LabelPerf) -> f64| -> f64 {
            let sum: f64 = self.labels.iter().map(|l| f(l) * l.count as f64).sum();
            sum / count as f64
        };
        (total(|l| l.accuracy), total(|l| l.loss), count)
    }

    /// The entry of `label`, if any.
    pub fn get(&self, label: usize) -> Option<&LabelPerf> {
        self.labels.iter().find(|l| l.label == label)
    }
}

/// Per-label performance of every model: from `eval.json` when present,
/// else from the records (one value per distinct sample).
pub fn label_performance(data: &Dataset) -> BTreeMap<ModelId, ModelPerf> {
    data.models()
        .into_iter()
        .map(|m| {
            let perf = match data.evals.get(&m.sha256) {
                Some(e) => ModelPerf {
                    source: PerfSource::EvalJson,
                    labels: e
                        .per_class
                        .iter()
                        .map(|c| LabelPerf {
                            label: c.label,
                            name: c.name.clone(),
                            accuracy: c.accuracy,
                            loss: c.loss,
                            count: c.count,
                        })
                        .collect(),
                },
                None => perf_from_records(data, &m),
            };
            (m, perf)
        })
        .collect()
}

/// One (label, loss, correct) per distinct sample of `model`.
pub fn samples_of(data: &Dataset, model: &ModelId) -> BTreeMap<usize, (usize, String, f64, bool)> {
    let mut m = BTreeMap::new();
    for r in data
        .records
        .iter()
        .filter(|r| r.model_sha256 == model.sha256)
    {
        m.entry(r.sample)
            .or_insert_with(|| (r.label, r.label_name.clone(), r.loss, r.correct));
    }
    m
}

fn perf_from_records(data: &Dataset, model: &ModelId) -> ModelPerf {
    let mut acc: BTreeMap<usize, (String, usize, usize, f64)> = BTreeMap::new();
    for (label, name, loss, correct) in samples_of(data, model).into_values() {
        let e = acc.entry(label).or_insert((name, 0, 0, 0.0));
        e.1 += 1;
        e.2 += usize::from(correct);
        e.3 += loss;
    }
    let labels = acc
        .into_iter()
        .map(|(label, (name, n, ok, loss))| LabelPerf {
            label,
            name,
            accuracy: ok as f64 / n as f64,
            loss: loss / n as f64,
            count: n,
        })
        .collect();
    ModelPerf {
        source: PerfSource::Records,
        labels,
    }
}
