//! Reports across training: the record directories are the checkpoints of
//! one run, in training order. Trends per block are checked against
//! per-checkpoint means computed by hand from the synthetic records.

mod common;

use common::*;
use std::fs;
use std::path::PathBuf;
use stiffness_records::{JacobianKind, Record, SpectrumVariant};
use stiffness_report::{write_report, Analysis, Axis, Dataset, Error, Line, Metric, ReportOptions};

/// Checkpoint names whose alphabetical order (10, 11, 9) differs from the
/// training order given (9, 10, 11).
const CHECKPOINTS: [&str; 3] = ["epoch-9", "epoch-10", "epoch-11"];

/// The planted change with training: spectral radius grows by 1 per
/// checkpoint, the share of negative real parts falls by 0.01.
fn at_checkpoint(mut r: Record, c: usize) -> Record {
    r.model = CHECKPOINTS[c].into();
    r.model_sha256 = format!("{c:064x}");
    r.spectral_radius = r.spectral_radius.map(|v| v + c as f64);
    r.neg_share = r.neg_share.map(|v| v - 0.01 * c as f64);
    r
}

/// One record directory per checkpoint (in training order); `skip_sample`
/// leaves that sample out of the last checkpoint.
fn checkpoint_dirs(name: &str, skip_sample: Option<usize>) -> Vec<PathBuf> {
    (0..CHECKPOINTS.len())
        .map(|c| {
            let dir = temp_dir(&format!("{name}-{c}"));
            let last = c + 1 == CHECKPOINTS.len();
            let records: Vec<Record> = all_records()
                .into_iter()
                .filter(|r| !(last && Some(r.sample) == skip_sample))
                .map(|r| at_checkpoint(r, c))
                .collect();
            write_dir(&dir, &records, true);
            dir
        })
        .collect()
}

/// The mean over samples of a metric in one (block, kind, variant) at
/// checkpoint `c`, by hand.
fn hand_mean(c: usize, block: usize, metric: fn(&Record) -> Option<f64>) -> f64 {
    let v: Vec<f64> = (0..SAMPLES)
        .filter_map(|s| {
            metric(&at_checkpoint(
                record(s, block, JacobianKind::Block, SpectrumVariant::Exact),
                c,
            ))
        })
        .collect();
    v.iter().sum::<f64>() / v.len() as f64
}

fn training_trend(a: &Analysis, block: usize, metric: Metric) -> &stiffness_report::TrendRow {
    a.trends
        .iter()
        .find(|t| {
            t.axis == Axis::Training
                && t.line == Line::Block(block, BLOCKS[block].0.into())
                && t.kind == JacobianKind::Block
                && t.spectrum == SpectrumVariant::Exact
                && t.metric == metric
        })
        .expect("training trend present")
}

#[test]
fn training_trends_follow_the_given_order_and_match_hand_means() {
    let data = Dataset::load(&checkpoint_dirs("order", None)).unwrap();
    let a = Analysis::new(&data, true).unwrap();
    let names: Vec<&str> = a.checkpoints.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, CHECKPOINTS);
    for block in [0, 1, 3] {
        let t = training_trend(&a, block, Metric::SpectralRadius);
        let points: Vec<(&str, usize)> = t.points.iter().map(|p| (p.0.as_str(), p.1)).collect();
        assert_eq!(points, [("epoch-9", 0), ("epoch-10", 1), ("epoch-11", 2)]);
        for (c, p) in t.points.iter().enumerate() {
            let want = hand_mean(c, block, |r| r.spectral_radius);
            assert!((p.2 - want).abs() < 1e-12, "{} vs {want}", p.2);
        }
        assert_eq!(t.result.as_ref().unwrap().r, 1.0);
        assert_eq!(t.result.as_ref().unwrap().n, 3);
        let t = training_trend(&a, block, Metric::NegShare);
        assert_eq!(t.result.as_ref().unwrap().r, -1.0);
    }
    // Depth trends are still there, one per checkpoint.
    let depth = a.trends.iter().filter(|t| t.axis == Axis::Depth);
    let models: std::collections::BTreeSet<&str> = depth.map(|t| t.line.name()).collect();
    assert_eq!(models.len(), 3);
}

#[test]
fn training_trends_join_the_benjamini_hochberg_family() {
    let data = Dataset::load(&checkpoint_dirs("bh", None)).unwrap();
    let plain = Analysis::new(&data, false).unwrap();
    let across = Analysis::new(&data, true).unwrap();
    assert!(plain.trends.iter().all(|t| t.axis == Axis::Depth));
    let training = across
        .trends
        .iter()
        .filter(|t| t.axis == Axis::Training && t.q.is_some())
        .count();
    assert!(training > 0);
    assert_eq!(across.family_size(), plain.family_size() + training);
}

#[test]
fn one_checkpoint_is_not_a_training_run() {
    let dir = temp_dir("one-checkpoint");
    write_dir(&dir, &all_records(), true);
    let data = Dataset::load(&[dir]).unwrap();
    match Analysis::new(&data, true) {
        Err(Error::Invalid(msg)) => assert!(msg.contains("at least two checkpoints"), "{msg}"),
        other => panic!("expected an error, got {:?}", other.map(|a| a.checkpoints)),
    }
}

#[test]
fn overall_performance_weights_labels_by_their_images() {
    let data = Dataset::load(&checkpoint_dirs("overall", None)).unwrap();
    let a = Analysis::new(&data, true).unwrap();
    let (accuracy, loss, count) = a.performance[&a.checkpoints[0]].overall();
    assert!((accuracy - (0.9 + 0.7 + 0.85 + 0.6) / 4.0).abs() < 1e-15);
    assert!((loss - (0.3 + 0.9 + 0.5 + 1.2) / 4.0).abs() < 1e-15);
    assert_eq!(count, 400);
}

#[test]
fn report_across_training_has_its_sections_figures_and_rows() {
    let out = temp_dir("training-report");
    let opt = ReportOptions {
        key_metrics: vec![Metric::SpectralRadius],
        across_training: true,
        ..ReportOptions::default()
    };
    let summary = write_report(&checkpoint_dirs("report", Some(0)), &out, &opt).unwrap();
    let md = fs::read_to_string(out.join("report.md")).unwrap();
    for heading in [
        "## Checkpoints across training",
        "## Trends across training",
        "### Metric across training",
    ] {
        assert!(md.contains(heading), "missing {heading}");
    }
    for kind in ["block", "residual"] {
        let svg = out.join(format!("figures/training_{kind}_exact_spectral_radius.svg"));
        let text = fs::read_to_string(&svg).unwrap();
        assert!(text.contains("epoch-10"), "tick names in {}", svg.display());
    }
    let csv = fs::read_to_string(out.join("trends.csv")).unwrap();
    let row = csv
        .lines()
        .find(|l| l.starts_with("training,layer2.1,,block,exact,spectral_radius,"))
        .expect("training row in trends.csv");
    assert!(row.contains("epoch-9;epoch-10;epoch-11"), "{row}");
    let note = summary
        .notes
        .iter()
        .find(|n| n.contains("other samples"))
        .expect("note on differing samples");
    assert!(
        note.contains("epoch-11") && note.contains("epoch-9"),
        "{note}"
    );
}

#[test]
fn a_plain_report_has_no_training_parts() {
    let out = temp_dir("plain-report");
    let opt = ReportOptions {
        key_metrics: vec![Metric::SpectralRadius],
        ..ReportOptions::default()
    };
    write_report(&checkpoint_dirs("plain", None), &out, &opt).unwrap();
    let md = fs::read_to_string(out.join("report.md")).unwrap();
    assert!(!md.contains("across training"));
    assert!(!out
        .join("figures/training_block_exact_spectral_radius.svg")
        .exists());
}
