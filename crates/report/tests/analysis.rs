//! Aggregation, correlations, non-finite handling and BH against hand
//! computation and stiffness_stats on the same vectors.

mod common;

use common::*;
use stiffness_records::{JacobianKind, SpectrumVariant};
use stiffness_report::{Analysis, Dataset, GroupKey, Metric, ModelId, PerfSource, Scope, Target};
use stiffness_stats::{
    benjamini_hochberg, partial_pearson, pearson, point_biserial, spearman, spearman_trend, Method,
};

fn analysis(name: &str, with_eval: bool) -> (Dataset, Analysis) {
    let dir = temp_dir(name);
    write_dir(&dir, &all_records(), with_eval);
    let data = Dataset::load(&[dir]).unwrap();
    let a = Analysis::new(&data, false).unwrap();
    (data, a)
}

fn key(block: usize, kind: JacobianKind, spectrum: SpectrumVariant) -> GroupKey {
    GroupKey {
        model: ModelId {
            name: "resnet-test".into(),
            sha256: SHA.into(),
        },
        block_index: block,
        block: BLOCKS[block].0.into(),
        kind,
        spectrum,
    }
}

fn si(sample: usize, block: usize) -> f64 {
    stiffness_index(
        sample,
        block,
        JacobianKind::Residual,
        SpectrumVariant::Exact,
    )
}

#[test]
fn aggregates_match_hand_computation_and_count_non_finite() {
    let (_, a) = analysis("agg", true);
    let k = key(0, JacobianKind::Residual, SpectrumVariant::Exact);
    // Label 1 holds samples 1 (+inf), 5 (NaN), 9.
    let g = a
        .aggregates
        .iter()
        .find(|g| g.key == k && g.label == Some(1) && g.metric == Metric::StiffnessIndex)
        .unwrap();
    assert_eq!(
        (g.counts.present, g.counts.finite, g.counts.excluded()),
        (3, 1, 2)
    );
    assert_eq!((g.counts.pos_inf, g.counts.nan), (1, 1));
    let s = g.summary.unwrap();
    assert_eq!((s.n, s.mean, s.std), (1, si(9, 0), None));
    // Label 0 holds samples 0, 4, 8: mean, median and sample std by hand.
    let g = a
        .aggregates
        .iter()
        .find(|g| g.key == k && g.label == Some(0) && g.metric == Metric::StiffnessIndex)
        .unwrap();
    let v = [si(0, 0), si(4, 0), si(8, 0)];
    let mean = v.iter().sum::<f64>() / 3.0;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 2.0;
    let mut sorted = v;
    sorted.sort_by(f64::total_cmp);
    let s = g.summary.unwrap();
    assert!((s.mean - mean).abs() < 1e-12);
    assert_eq!(s.median, sorted[1]);
    assert!((s.std.unwrap() - var.sqrt()).abs() < 1e-12);
    // All labels: 12 present, 2 excluded.
    let all = a.overall(&k, Metric::StiffnessIndex).unwrap();
    assert_eq!(
        (
            all.counts.present,
            all.counts.finite,
            all.label_name.as_str()
        ),
        (12, 10, "all")
    );
}

#[test]
fn inapplicable_metrics_are_absent_and_sigma_fields_are_aggregated() {
    let (_, a) = analysis("sigma", true);
    let k = key(2, JacobianKind::Block, SpectrumVariant::Exact);
    assert!(a.overall(&k, Metric::StiffnessIndex).is_none());
    let g = a.overall(&k, Metric::SigmaRatio).unwrap();
    let mean = (0..SAMPLES)
        .map(|s| (3.0 + 0.1 * s as f64) / (0.1 + 0.01 * s as f64))
        .sum::<f64>()
        / SAMPLES as f64;
    assert!((g.summary.unwrap().mean - mean).abs() < 1e-9);
    let pk = key(2, JacobianKind::Block, SpectrumVariant::PaperCompat);
    assert!(a.overall(&pk, Metric::StiffnessIndex).is_some());
    assert!(a.overall(&pk, Metric::SpectralRadius).is_none());
}

fn label_means(block: usize) -> Vec<f64> {
    (0..LABELS.len())
        .map(|l| {
            let v: Vec<f64> = (0..SAMPLES)
                .filter(|s| label_of(*s) == l)
                .map(|s| si(s, block))
                .filter(|x| x.is_finite())
                .collect();
            v.iter().sum::<f64>() / v.len() as f64
        })
        .collect()
}

#[test]
fn correlations_equal_stiffness_stats_on_the_same_vectors() {
    let (_, a) = analysis("corr", true);
    let k = key(1, JacobianKind::Residual, SpectrumVariant::Exact);
    let x = label_means(1);
    let e = eval_summary();
    let acc: Vec<f64> = e.per_class.iter().map(|c| c.accuracy).collect();
    let loss: Vec<f64> = e.per_class.iter().map(|c| c.loss).collect();
    let get = |scope, target, method| {
        a.find(&k, Metric::StiffnessIndex, scope, target, method)
            .unwrap()
            .result
            .clone()
    };
    assert_eq!(
        get(Scope::Labels, Target::Accuracy, Method::Pearson),
        pearson(&x, &acc)
    );
    assert_eq!(
        get(Scope::Labels, Target::Loss, Method::Spearman),
        spearman(&x, &loss)
    );
    let xs: Vec<f64> = (0..SAMPLES).map(|s| si(s, 1)).collect();
    let ls: Vec<f64> = (0..SAMPLES).map(loss_of).collect();
    let cs: Vec<bool> = (0..SAMPLES).map(correct_of).collect();
    assert_eq!(
        get(Scope::Samples, Target::Loss, Method::Pearson),
        pearson(&xs, &ls)
    );
    assert_eq!(
        get(Scope::Samples, Target::Correct, Method::PointBiserial),
        point_biserial(&cs, &xs)
    );
}

#[test]
fn non_finite_values_are_excluded_from_tests_and_counted() {
    let (_, a) = analysis("nonfinite", true);
    let k = key(0, JacobianKind::Residual, SpectrumVariant::Exact);
    let c = a
        .find(
            &k,
            Metric::StiffnessIndex,
            Scope::Samples,
            Target::Loss,
            Method::Pearson,
        )
        .unwrap();
    let r = c.result.as_ref().unwrap();
    assert_eq!((r.n, r.excluded), (10, 2));
}

/// The analysis of the synthetic records with the block-kind exact
/// stiffness index of layer2.1 set to +inf on samples 0..`inf_below`.
fn analysis_with_infinite(name: &str, inf_below: usize) -> Analysis {
    let mut records = all_records();
    for r in &mut records {
        if r.block_index == 3
            && r.kind == JacobianKind::Block
            && r.spectrum == SpectrumVariant::Exact
            && r.sample < inf_below
        {
            r.stiffness_index = Some(f64::INFINITY);
        }
    }
    let dir = temp_dir(name);
    write_dir(&dir, &records, true);
    Analysis::new(&Dataset::load(&[dir]).unwrap(), false).unwrap()
}

#[test]
fn tests_where_most_pairs_are_non_finite_are_not_computed() {
    let k = key(3, JacobianKind::Block, SpectrumVariant::Exact);
    let result = |a: &Analysis, scope, target, method| {
        a.find(&k, Metric::StiffnessIndex, scope, target, method)
            .unwrap()
            .clone()
    };
    // 9 of 12 samples +inf: 3 finite samples are a selection, not a sample.
    let a = analysis_with_infinite("mostly-inf", 9);
    for (target, method) in [
        (Target::Loss, Method::Pearson),
        (Target::Loss, Method::Spearman),
        (Target::Correct, Method::PointBiserial),
    ] {
        let c = result(&a, Scope::Samples, target, method);
        let e = c.result.unwrap_err();
        assert_eq!((e.n, e.excluded, c.q), (3, 9, None));
        assert!(
            e.reason.starts_with("only 3 of 12 pairs finite"),
            "{}",
            e.reason
        );
    }
    // Labels 1-3 keep one finite sample each (9, 10, 11), label 0 none:
    // 3 of 4 label means finite, so that test runs.
    let c = result(&a, Scope::Labels, Target::Accuracy, Method::Pearson);
    let r = c.result.unwrap();
    assert_eq!((r.n, r.excluded), (3, 1));
    assert!(c.q.is_some());
    // Half finite is enough: 6 of 12 samples.
    let a = analysis_with_infinite("half-inf", 6);
    let c = result(&a, Scope::Samples, Target::Loss, Method::Pearson);
    let xs: Vec<f64> = (6..SAMPLES)
        .map(|s| stiffness_index(s, 3, JacobianKind::Block, SpectrumVariant::Exact))
        .collect();
    let ls: Vec<f64> = (6..SAMPLES).map(loss_of).collect();
    let r = c.result.unwrap();
    assert_eq!((r.n, r.excluded), (6, 6));
    assert_eq!(r.r, pearson(&xs, &ls).unwrap().r);
}

#[test]
fn not_computable_results_carry_reasons_and_no_q() {
    let (_, a) = analysis("nc", true);
    // n_zero is constant (24) everywhere: zero variance.
    let k = key(3, JacobianKind::Block, SpectrumVariant::Exact);
    let c = a
        .find(
            &k,
            Metric::NZero,
            Scope::Labels,
            Target::Accuracy,
            Method::Pearson,
        )
        .unwrap();
    assert!(c
        .result
        .as_ref()
        .unwrap_err()
        .reason
        .contains("zero variance"));
    assert_eq!(c.q, None);
}

#[test]
fn benjamini_hochberg_runs_over_the_whole_family() {
    let (_, a) = analysis("bh", true);
    let p_of = |r: &Result<stiffness_stats::Correlation, stiffness_stats::NotComputable>| {
        r.as_ref().ok().map(|c| c.p)
    };
    let mut p: Vec<Option<f64>> = a.correlations.iter().map(|c| p_of(&c.result)).collect();
    p.extend(a.trends.iter().map(|t| p_of(&t.result)));
    let q = benjamini_hochberg(&p);
    let mine: Vec<Option<f64>> = a
        .correlations
        .iter()
        .map(|c| c.q)
        .chain(a.trends.iter().map(|t| t.q))
        .collect();
    assert_eq!(mine, q);
    let m = p.iter().flatten().count();
    assert_eq!(a.family_size(), m);
    assert!(m > 100, "family of {m} tests");
}

#[test]
fn depth_trend_is_spearman_of_block_means() {
    let (_, a) = analysis("trend", true);
    let t = a
        .trends
        .iter()
        .find(|t| {
            t.kind == JacobianKind::Block
                && t.spectrum == SpectrumVariant::Exact
                && t.metric == Metric::SpectralRadius
        })
        .unwrap();
    let names: Vec<&str> = t.points.iter().map(|b| b.0.as_str()).collect();
    assert_eq!(names, ["layer1.0", "layer1.1", "layer2.1"]);
    let means: Vec<f64> = t.points.iter().map(|b| b.2).collect();
    assert_eq!(t.result, spearman_trend(&means));
    assert_eq!(t.result.as_ref().unwrap().r, 1.0);
}

#[test]
fn performance_comes_from_eval_json_or_from_records() {
    let (_, a) = analysis("perf-eval", true);
    let p = a.performance.values().next().unwrap();
    assert_eq!(p.source, PerfSource::EvalJson);
    assert_eq!(p.labels[1].accuracy, 0.7);
    let (_, a) = analysis("perf-rec", false);
    let p = a.performance.values().next().unwrap();
    assert_eq!(p.source, PerfSource::Records);
    // Label 1: samples 1, 5, 9; correct_of: 1 -> false, 5 -> true, 9 -> true.
    assert!((p.labels[1].accuracy - 2.0 / 3.0).abs() < 1e-15);
    let loss = (loss_of(1) + loss_of(5) + loss_of(9)) / 3.0;
    assert!((p.labels[1].loss - loss).abs() < 1e-15);
    assert_eq!(p.labels[1].count, 3);
}

/// Active outputs of the block-kind exact record of (`sample`, `block`) in
/// the confounding tests (n_out = 64).
fn active_outputs(sample: usize, block: usize) -> usize {
    20 + (sample * 7 + block * 3) % 11
}

#[test]
fn metrics_are_tested_given_the_active_share_of_the_same_sample_and_block() {
    // The tests below look at layer1.1 (block 1).
    let share = |s: usize| active_outputs(s, 1) as f64 / 64.0;
    let mut records = all_records();
    for r in &mut records {
        match (r.kind, r.spectrum) {
            (JacobianKind::Block, SpectrumVariant::Exact) if r.square => {
                r.n_active = Some(active_outputs(r.sample, r.block_index));
            }
            // A metric that is the active share up to scale: nothing left
            // once the share is accounted for.
            (JacobianKind::Block, SpectrumVariant::PaperCompat) => {
                r.neg_share = Some(0.5 * active_outputs(r.sample, r.block_index) as f64 / 64.0);
            }
            _ => {}
        }
    }
    let dir = temp_dir("confounding");
    write_dir(&dir, &records, true);
    let data = Dataset::load(&[dir]).unwrap();
    let a = Analysis::new(&data, false).unwrap();
    let c = &a.confounding;
    let ls: Vec<f64> = (0..SAMPLES).map(loss_of).collect();
    let zs: Vec<f64> = (0..SAMPLES).map(share).collect();

    // The control's own test, layer1.1 across samples.
    let control = c
        .control
        .iter()
        .find(|r| r.key.block == "layer1.1" && r.scope == Scope::Samples)
        .unwrap();
    assert_eq!(control.result, pearson(&zs, &ls));

    // The residual kind's spectral radius given the block kind's share, by
    // sample: the join is by (model, block, sample).
    let k = key(1, JacobianKind::Residual, SpectrumVariant::Exact);
    let row = |k: &GroupKey, metric, scope, target| {
        c.rows
            .iter()
            .find(|r| &r.key == k && r.metric == metric && r.scope == scope && r.target == target)
            .unwrap()
    };
    let xs: Vec<f64> = (0..SAMPLES)
        .map(|s| 1.5 + 0.3 + 0.01 * s as f64 * s as f64)
        .collect();
    let r = row(&k, Metric::SpectralRadius, Scope::Samples, Target::Loss);
    assert_eq!(r.partial, partial_pearson(&xs, &ls, &zs));
    assert_eq!(r.plain, pearson(&xs, &ls));
    assert_eq!(r.with_control, pearson(&xs, &zs));
    assert!(r.q.is_some());

    // Across labels: per-label means of the metric and of the share.
    let mean_by_label = |f: &dyn Fn(usize) -> f64| -> Vec<f64> {
        (0..LABELS.len())
            .map(|l| {
                let v: Vec<f64> = (0..SAMPLES).filter(|s| label_of(*s) == l).map(f).collect();
                v.iter().sum::<f64>() / v.len() as f64
            })
            .collect()
    };
    let xl = mean_by_label(&|s| xs[s]);
    let zl = mean_by_label(&share);
    let acc: Vec<f64> = eval_summary()
        .per_class
        .iter()
        .map(|c| c.accuracy)
        .collect();
    let r = row(&k, Metric::SpectralRadius, Scope::Labels, Target::Accuracy);
    assert_eq!(r.partial, partial_pearson(&xl, &acc, &zl));
    assert_eq!(r.partial.as_ref().unwrap().n, LABELS.len());

    // A metric proportional to the share: significant alone, nothing given it.
    let k = key(1, JacobianKind::Block, SpectrumVariant::PaperCompat);
    let r = row(&k, Metric::NegShare, Scope::Samples, Target::Loss);
    assert_eq!(r.plain.as_ref().unwrap().r, pearson(&zs, &ls).unwrap().r);
    assert_eq!(
        r.partial.as_ref().unwrap_err().reason,
        "x is a linear function of the control z"
    );
    assert_eq!(r.q, None);

    // Only square blocks have the control; the section shows the last one.
    assert!(c.rows.iter().all(|r| r.key.block != "layer2.0"));
    let section = stiffness_report::confound::section(&a, 0.05);
    assert!(!section.is_empty());
}

#[test]
fn without_block_kind_exact_records_nothing_is_tested_given_the_share() {
    let records: Vec<_> = all_records()
        .into_iter()
        .filter(|r| r.kind == JacobianKind::Residual)
        .collect();
    let dir = temp_dir("confounding-none");
    write_dir(&dir, &records, true);
    let a = Analysis::new(&Dataset::load(&[dir]).unwrap(), false).unwrap();
    assert!(a.confounding.rows.is_empty() && a.confounding.control.is_empty());
    assert!(stiffness_report::confound::section(&a, 0.05).is_empty());
}
