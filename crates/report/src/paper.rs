//! The paper's published figures beside this report's: "Block-level
//! stiffness analysis of residual networks" (ICLR 2023 submission) reports,
//! for the last residual block of torchvision ResNets, per-label Pearson
//! correlations of the stiffness index with accuracy (significant at
//! p <= 0.05) and, for ResNet50, the block's mean stiffness index and share
//! of eigenvalues with negative real part. Its Jacobian is the whole
//! block's (J_B) and its spectrum the slice spectrum this tool calls
//! paper-compatible; both spectra are shown here when they were computed,
//! and the residual branch's J_F beside J_B: the exact spectrum of J_B has
//! an exact zero eigenvalue for every inactive output, so its stiffness
//! index is +inf whenever an output ReLU is off, and J_F is where the exact
//! stiffness index is finite.

use crate::aggregate::GroupKey;
use crate::analysis::{Analysis, Scope, Target};
use crate::dataset::{Dataset, ModelId};
use crate::doc::Block;
use crate::figures::{pval, short};
use crate::metric::Metric;
use stiffness_records::JacobianKind;
use stiffness_stats::{Correlation, Method};

/// The paper's per-label Pearson r of the last block's stiffness index with
/// accuracy, by torchvision architecture.
pub const PUBLISHED_R: [(&str, f64); 3] = [
    ("resnet18", -0.36),
    ("resnet34", -0.20),
    ("resnet50", -0.27),
];

/// The paper's ResNet50 last block: mean stiffness index and share of
/// eigenvalues with negative real part.
pub const PUBLISHED_RESNET50: [(Metric, f64); 2] =
    [(Metric::StiffnessIndex, -35.32), (Metric::NegShare, 0.3196)];

/// The tests shown for the last block: the stiffness index and the share of
/// negative real parts against per-label accuracy and loss.
const TESTS: [(Metric, Target); 4] = [
    (Metric::StiffnessIndex, Target::Accuracy),
    (Metric::StiffnessIndex, Target::Loss),
    (Metric::NegShare, Target::Accuracy),
    (Metric::NegShare, Target::Loss),
];

/// The columns of the table.
const HEADER: [&str; 12] = [
    "model", "block", "kind", "spectrum", "what", "paper", "here", "n", "95% CI", "p", "q",
    "verdict",
];

/// The section "Against the paper": one table row per test or value of the
/// last square block of every model (J_B, then J_F; every spectrum variant
/// analysed), with the paper's figure where it published one (J_B, that
/// architecture), and a verdict. Empty when no model has a square block.
pub fn section(data: &Dataset, a: &Analysis, alpha: f64) -> Vec<Block> {
    let mut rows = Vec::new();
    for model in data.models() {
        let arch = data.manifest(&model).map(|m| m.arch.as_str()).unwrap_or("");
        for key in last_block(a, &model) {
            rows.extend(correlation_rows(a, &key, arch, alpha));
            rows.extend(value_rows(a, &key, arch));
        }
    }
    if rows.is_empty() {
        return Vec::new();
    }
    vec![
        Block::Heading(2, "Against the paper".into()),
        Block::Para(format!(
            "The paper's figures beside ours for the last square block of each model: the \
             whole-block Jacobian J_B (the paper's; its exact spectrum has an exact zero for \
             every inactive output, so its stiffness index is +inf whenever an output ReLU is \
             off) and the residual branch's J_F (kind residual). Correlations are across labels (Pearson, per-label metric \
             mean against per-label accuracy or mean loss); the paper calls them significant at \
             p <= 0.05 without correction for multiple tests, so both p and the Benjamini-Hochberg \
             q over this report's family are shown, and the verdict names which one passes \
             alpha = {alpha}. Means are over all analysed samples with their 95% t-interval. The \
             paper published r for torchvision ResNet18 (-0.36), ResNet34 (-0.20) and ResNet50 \
             (-0.27), and for ResNet50 a mean stiffness index of -35.32 and 31.96 % negative real \
             parts; other architectures show ours alone."
        )),
        Block::Table(HEADER.iter().map(|s| s.to_string()).collect(), rows),
    ]
}

/// The groups (J_B first, then J_F; one per spectrum variant) of the
/// deepest square block of `model`.
pub(crate) fn last_block(a: &Analysis, model: &ModelId) -> Vec<GroupKey> {
    let square = |k: &GroupKey| &k.model == model && a.overall(k, Metric::StiffnessIndex).is_some();
    let Some(depth) = a
        .groups
        .keys()
        .filter(|k| square(k))
        .map(|k| k.block_index)
        .max()
    else {
        return Vec::new();
    };
    let mut keys: Vec<GroupKey> = a
        .groups
        .keys()
        .filter(|k| square(k) && k.block_index == depth)
        .cloned()
        .collect();
    keys.sort_by_key(|k| (k.kind != JacobianKind::Block, k.spectrum));
    keys
}

/// What a row of the table shows.
#[derive(Clone, Copy)]
enum Quantity {
    /// Per-label Pearson r of the metric with the target.
    R(Metric, Target),
    /// The metric's mean over all samples.
    Mean(Metric),
}

/// The paper's figure for `what` of the group `key` of a model of
/// architecture `arch`, if it published one (always for J_B).
fn published(key: &GroupKey, arch: &str, what: Quantity) -> Option<f64> {
    if key.kind != JacobianKind::Block {
        return None;
    }
    match what {
        Quantity::R(Metric::StiffnessIndex, Target::Accuracy) => PUBLISHED_R
            .iter()
            .find(|(a, _)| *a == arch)
            .map(|(_, r)| *r),
        Quantity::Mean(metric) if arch == "resnet50" => PUBLISHED_RESNET50
            .iter()
            .find(|(m, _)| *m == metric)
            .map(|(_, v)| *v),
        _ => None,
    }
}

/// One table row: the group, what it shows, the paper's figure, then
/// `rest` (here, n, 95% CI, p, q, verdict), padded to the header's width.
fn table_row(key: &GroupKey, what: String, paper: Option<f64>, rest: Vec<String>) -> Vec<String> {
    let mut cells = key.table_cells();
    cells.extend([what, paper.map_or("–".into(), |p| p.to_string())]);
    cells.extend(rest);
    cells.resize(HEADER.len(), String::new());
    cells
}

fn correlation_rows(a: &Analysis, key: &GroupKey, arch: &str, alpha: f64) -> Vec<Vec<String>> {
    TESTS
        .iter()
        .filter_map(|&(metric, target)| {
            let row = a.find(key, metric, Scope::Labels, target, Method::Pearson)?;
            let paper = published(key, arch, Quantity::R(metric, target));
            let rest = match &row.result {
                Ok(c) => vec![
                    short(c.r),
                    c.n.to_string(),
                    format!("[{}, {}]", short(c.ci_low), short(c.ci_high)),
                    pval(c.p),
                    row.q.map_or("–".into(), pval),
                    verdict(c, row.q, paper, alpha),
                ],
                Err(e) => vec![format!("not computable: {}", e.reason), e.n.to_string()],
            };
            let what = format!("r({metric}, {})", target.as_str());
            Some(table_row(key, what, paper, rest))
        })
        .collect()
}

/// "the paper's `name` is inside the 95% CI" or "the 95% CI excludes the
/// paper's `name`".
fn interval_verdict(low: f64, high: f64, paper: f64, name: &str) -> String {
    if (low..=high).contains(&paper) {
        format!("the paper's {name} is inside the 95% CI")
    } else {
        format!("the 95% CI excludes the paper's {name}")
    }
}

/// Whether the correlation `c` (with BH q) supports a published r of
/// `paper` (or, without one, whether it is significant at all).
pub fn verdict(c: &Correlation, q: Option<f64>, paper: Option<f64>, alpha: f64) -> String {
    let by_p = c.p < alpha;
    let by_q = q.is_some_and(|q| q < alpha);
    let level = match (by_p, by_q) {
        (_, true) => format!("significant (p and q < {alpha})"),
        (true, false) => format!("significant by p only (q >= {alpha})"),
        (false, _) => format!("not significant (p >= {alpha})"),
    };
    let Some(r) = paper else {
        return level;
    };
    let sign = if !by_p {
        ""
    } else if (c.r < 0.0) == (r < 0.0) {
        ", same sign as the paper"
    } else {
        ", opposite sign to the paper"
    };
    let inside = interval_verdict(c.ci_low, c.ci_high, r, "r");
    format!("{level}{sign}; {inside}")
}

fn value_rows(a: &Analysis, key: &GroupKey, arch: &str) -> Vec<Vec<String>> {
    [Metric::StiffnessIndex, Metric::NegShare]
        .iter()
        .filter_map(|&metric| {
            let g = a.overall(key, metric)?;
            let paper = published(key, arch, Quantity::Mean(metric));
            let excluded = g.counts.excluded();
            let rest = match g.summary {
                None => vec![format!("undefined ({excluded} inf/NaN)"), "0".into()],
                Some(s) => {
                    let interval = s.ci_low.zip(s.ci_high);
                    let excluded = match excluded {
                        0 => String::new(),
                        k => format!(" ({k} inf/NaN excluded)"),
                    };
                    vec![
                        format!("{}{excluded}", short(s.mean)),
                        s.n.to_string(),
                        interval.map_or("–".into(), |(lo, hi)| {
                            format!("[{}, {}]", short(lo), short(hi))
                        }),
                        String::new(),
                        String::new(),
                        paper.zip(interval).map_or(String::new(), |(p, (lo, hi))| {
                            interval_verdict(lo, hi, p, "value")
                        }),
                    ]
                }
            };
            Some(table_row(key, format!("mean {metric}"), paper, rest))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corr(r: f64, p: f64, ci: (f64, f64)) -> Correlation {
        Correlation {
            method: Method::Pearson,
            n: 200,
            r,
            p,
            ci_low: ci.0,
            ci_high: ci.1,
            level: 0.95,
            excluded: 0,
        }
    }

    #[test]
    fn verdicts_name_the_level_the_sign_and_the_interval() {
        let c = corr(-0.3, 1e-5, (-0.42, -0.17));
        assert_eq!(
            verdict(&c, Some(1e-3), Some(-0.36), 0.05),
            "significant (p and q < 0.05), same sign as the paper; the paper's r is inside the 95% CI"
        );
        let c = corr(0.2, 0.004, (0.06, 0.33));
        assert_eq!(
            verdict(&c, Some(0.2), Some(-0.36), 0.05),
            "significant by p only (q >= 0.05), opposite sign to the paper; the 95% CI excludes the paper's r"
        );
        let c = corr(-0.05, 0.48, (-0.19, 0.09));
        assert_eq!(
            verdict(&c, Some(0.9), Some(-0.20), 0.05),
            "not significant (p >= 0.05); the 95% CI excludes the paper's r"
        );
        assert_eq!(verdict(&c, None, None, 0.05), "not significant (p >= 0.05)");
    }
}
