//! The report end to end: structure snapshot, shard merging, record reading.

mod common;

use common::*;
use std::fs;
use std::path::PathBuf;
use stiffness_records::read_records;
use stiffness_records::store::records_csv;
use stiffness_records::RECORDS_JSONL;
use stiffness_report::tables::{
    AGGREGATES_HEADER, CONFOUNDING_HEADER, CORRELATIONS_HEADER, TRENDS_HEADER,
};
use stiffness_report::{write_report, Metric, ReportOptions};

fn first_line(path: &std::path::Path) -> String {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string()
}

const HEADINGS: &[&str] = &[
    "# Block-level stiffness report",
    "## Reproducibility",
    "## Method",
    "### Exact and paper-compatible spectra",
    "## Accuracy and loss per label",
    "## Stiffness by block",
    "## Depth trends",
    "## Correlations across labels",
    "## Correlations across samples",
    "## Against the paper",
    "## Output-ReLU activity as a confounder",
    "## Figures",
    "### Metric against depth",
    "### Eigenvalues in the complex plane",
    "### Per-label scatter plots",
    "### Correlation heat maps",
    "## Notes",
];

#[test]
fn report_structure_snapshot() {
    let dir = temp_dir("snap-in");
    write_dir(&dir, &all_records(), true);
    let out = temp_dir("snap-out");
    let opt = ReportOptions {
        key_metrics: vec![Metric::StiffnessIndex, Metric::SigmaRatio],
        ..ReportOptions::default()
    };
    let summary = write_report(&[dir], &out, &opt).unwrap();
    let files: Vec<String> = summary
        .files
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let expected = [
        "aggregates.csv",
        "confounding.csv",
        "correlations.csv",
        "figures/depth_block_exact_sigma_ratio",
        "figures/depth_block_exact_stiffness_index",
        "figures/depth_block_paper-compat_stiffness_index",
        "figures/depth_residual_exact_sigma_ratio",
        "figures/depth_residual_exact_stiffness_index",
        "figures/depth_residual_paper-compat_stiffness_index",
        "figures/eigs_resnet-test_layer2_1_s0_block_exact",
        "figures/eigs_resnet-test_layer2_1_s0_residual_exact",
        "figures/heatmap_resnet-test_block_exact_accuracy",
        "figures/heatmap_resnet-test_block_exact_loss",
        "figures/heatmap_resnet-test_block_paper-compat_accuracy",
        "figures/heatmap_resnet-test_block_paper-compat_loss",
        "figures/heatmap_resnet-test_residual_exact_accuracy",
        "figures/heatmap_resnet-test_residual_exact_loss",
        "figures/heatmap_resnet-test_residual_paper-compat_accuracy",
        "figures/heatmap_resnet-test_residual_paper-compat_loss",
        "figures/labels_resnet-test_block_exact_sigma_ratio_accuracy",
        "figures/labels_resnet-test_block_exact_sigma_ratio_loss",
        "figures/labels_resnet-test_block_exact_stiffness_index_accuracy",
        "figures/labels_resnet-test_block_exact_stiffness_index_loss",
        "figures/labels_resnet-test_block_paper-compat_stiffness_index_accuracy",
        "figures/labels_resnet-test_block_paper-compat_stiffness_index_loss",
        "figures/labels_resnet-test_residual_exact_sigma_ratio_accuracy",
        "figures/labels_resnet-test_residual_exact_sigma_ratio_loss",
        "figures/labels_resnet-test_residual_exact_stiffness_index_accuracy",
        "figures/labels_resnet-test_residual_exact_stiffness_index_loss",
        "figures/labels_resnet-test_residual_paper-compat_stiffness_index_accuracy",
        "figures/labels_resnet-test_residual_paper-compat_stiffness_index_loss",
        "report.html",
        "report.md",
        "trends.csv",
    ];
    let mut want: Vec<String> = Vec::new();
    for e in expected {
        if e.starts_with("figures/") {
            want.push(format!("{e}.png"));
            want.push(format!("{e}.svg"));
        } else {
            want.push(e.to_string());
        }
    }
    want.sort();
    assert_eq!(files, want);
    for f in &files {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let md = fs::read_to_string(out.join("report.md")).unwrap();
    assert_eq!(stiffness_report::doc::headings(&md), HEADINGS);
    assert_eq!(
        first_line(&out.join("aggregates.csv")),
        AGGREGATES_HEADER.join(",")
    );
    assert_eq!(
        first_line(&out.join("correlations.csv")),
        CORRELATIONS_HEADER.join(",")
    );
    assert_eq!(first_line(&out.join("trends.csv")), TRENDS_HEADER.join(","));
    assert_eq!(
        first_line(&out.join("confounding.csv")),
        CONFOUNDING_HEADER.join(",")
    );
    assert_eq!(
        AGGREGATES_HEADER.join(","),
        "model,model_sha256,block,block_index,kind,spectrum,label,label_name,metric,present,n,excluded,pos_inf,neg_inf,nan,mean,median,std,ci_low,ci_high,min,max"
    );
    assert_eq!(
        CORRELATIONS_HEADER.join(","),
        "model,model_sha256,block,block_index,kind,spectrum,metric,scope,target,method,n,r,p,ci_low,ci_high,q,excluded,reason"
    );
    assert_eq!(
        TRENDS_HEADER.join(","),
        "axis,line,model_sha256,kind,spectrum,metric,points,means,n,rho,p,ci_low,ci_high,q,excluded,reason,method"
    );
    let html = fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        html.contains("<svg") && !html.contains("src=\"figures/"),
        "HTML must be self-contained"
    );
    assert!(md.contains(SHA) && md.contains("/data/cifar10") && md.contains("1e-6 * max(1, rho)"));
    assert!(md.contains("eval.json"));
    assert_eq!(summary.models, 1);
}

fn tables(out: &std::path::Path) -> Vec<Vec<u8>> {
    ["aggregates.csv", "correlations.csv", "trends.csv"]
        .iter()
        .map(|f| fs::read(out.join(f)).unwrap())
        .collect()
}

#[test]
fn shards_give_byte_identical_tables_to_the_merged_records() {
    let all = all_records();
    let merged = temp_dir("shard-merged");
    write_dir(&merged, &all, true);
    let (a, b) = (temp_dir("shard-a"), temp_dir("shard-b"));
    // Shard A: even samples plus a few duplicates of B's work; B: odd samples,
    // written in reverse order.
    let mut ra: Vec<_> = all
        .iter()
        .filter(|r| r.sample % 2 == 0 || r.sample == 3)
        .cloned()
        .collect();
    let mut rb: Vec<_> = all.iter().filter(|r| r.sample % 2 == 1).cloned().collect();
    rb.reverse();
    ra.push(rb[0].clone());
    write_dir(&a, &ra, true);
    write_dir(&b, &rb, false);
    let opt = ReportOptions {
        key_metrics: vec![Metric::StiffnessIndex],
        ..ReportOptions::default()
    };
    let (o1, o2, o3) = (
        temp_dir("shard-o1"),
        temp_dir("shard-o2"),
        temp_dir("shard-o3"),
    );
    let s1 = write_report(&[merged], &o1, &opt).unwrap();
    let s2 = write_report(&[a.clone(), b.clone()], &o2, &opt).unwrap();
    write_report(&[b, a], &o3, &opt).unwrap();
    assert_eq!(tables(&o1), tables(&o2));
    assert_eq!(tables(&o1), tables(&o3));
    assert_eq!((s1.records, s2.records), (all.len(), all.len()));
    assert_eq!(s2.duplicates, 17);
}

#[test]
fn read_records_tolerates_only_a_truncated_last_line() {
    let dir = temp_dir("trunc");
    let recs: Vec<_> = all_records().into_iter().take(3).collect();
    let mut text: String = recs.iter().map(|r| r.to_json_line() + "\n").collect();
    let partial = &recs[0].to_json_line()[..40];
    fs::write(dir.join(RECORDS_JSONL), format!("{text}{partial}")).unwrap();
    assert_eq!(read_records(&dir).unwrap(), recs);

    text.insert_str(recs[0].to_json_line().len() + 1, "{\"model\": oops\n");
    fs::write(dir.join(RECORDS_JSONL), &text).unwrap();
    let err = read_records(&dir).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, stiffness_records::Error::Parse { line: Some(2), .. }),
        "{msg}"
    );
    assert!(
        msg.contains("records.jsonl") && msg.contains("line 2"),
        "{msg}"
    );
}

#[test]
fn records_round_trip_through_csv_and_json_with_non_finite_values() {
    let dir = temp_dir("csv");
    let recs = all_records();
    assert!(recs
        .iter()
        .any(|r| r.stiffness_index == Some(f64::INFINITY)));
    write_dir(&dir, &recs, false);
    let line = fs::read_to_string(dir.join(RECORDS_JSONL)).unwrap();
    assert!(
        line.contains("\"stiffness_index\":\"inf\"")
            && line.contains("\"stiffness_index\":\"nan\"")
    );
    fs::remove_file(dir.join(RECORDS_JSONL)).unwrap();
    let back = read_records(&dir).unwrap();
    assert_eq!(back.len(), recs.len());
    let same = |a: &stiffness_records::Record, b: &stiffness_records::Record| {
        a.to_json_line() == b.to_json_line()
    };
    assert!(back.iter().zip(&recs).all(|(a, b)| same(a, b)));
    let header = String::from_utf8(records_csv(&recs).unwrap()).unwrap();
    let first = header.lines().next().unwrap().to_string();
    assert_eq!(first, stiffness_records::store::record_columns().join(","));
    let _: PathBuf = dir;
}

#[test]
fn several_models_share_the_depth_figures() {
    let (a, b, out) = (temp_dir("two-a"), temp_dir("two-b"), temp_dir("two-out"));
    write_dir(&a, &all_records(), true);
    let other: Vec<_> = all_records()
        .into_iter()
        .map(|mut r| {
            r.model = "resnet-other".into();
            r.model_sha256 = "f".repeat(64);
            r.stiffness_index = r.stiffness_index.map(|x| 2.0 * x);
            r
        })
        .collect();
    write_dir(&b, &other, false);
    let opt = ReportOptions {
        key_metrics: vec![Metric::StiffnessIndex],
        formats: vec![stiffness_report::Format::Markdown],
        ..ReportOptions::default()
    };
    let s = write_report(&[a, b], &out, &opt).unwrap();
    assert_eq!(s.models, 2);
    let svg =
        fs::read_to_string(out.join("figures/depth_residual_exact_stiffness_index.svg")).unwrap();
    assert!(svg.contains("resnet-test") && svg.contains("resnet-other"));
    let md = fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("from eval.json") && md.contains("no eval.json found"));
    assert!(!out.join("report.html").exists());
}

#[test]
fn failure_records_never_replace_computed_ones_and_count_once() {
    use stiffness_records::{JacobianKind, SpectrumVariant};
    let computed = record(0, 0, JacobianKind::Block, SpectrumVariant::Exact);
    let mut failure = computed.clone();
    failure.failure = Some("the forward pass overflowed".into());
    failure.max_re = None;
    let mut other = record(1, 0, JacobianKind::Block, SpectrumVariant::Exact);
    other.failure = Some("a JVP overflowed".into());
    // The failure of sample 0 in two directories, before and after the
    // computed record; sample 1 failed twice.
    let (a, b) = (temp_dir("fail-a"), temp_dir("fail-b"));
    write_dir(&a, &[failure.clone(), other.clone()], true);
    write_dir(&b, &[computed.clone(), failure, other.clone()], false);
    for dirs in [vec![a.clone(), b.clone()], vec![b.clone(), a.clone()]] {
        let data = stiffness_report::Dataset::load(&dirs).unwrap();
        assert_eq!(data.records, vec![computed.clone()]);
        assert_eq!(
            data.failed,
            vec![(1, other.block.clone(), "a JVP overflowed".to_string())]
        );
    }
}

/// The rows of the "Against the paper" table of `md` (cells trimmed).
fn paper_rows(md: &str) -> Vec<Vec<String>> {
    let section = md.split("## Against the paper").nth(1).unwrap_or("");
    let section = section.split("\n## ").next().unwrap();
    section
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| model"))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

#[test]
fn the_paper_section_sets_its_figures_beside_the_reports_tests() {
    use stiffness_records::{JacobianKind, SpectrumVariant};
    use stiffness_report::aggregate::GroupKey;
    use stiffness_report::analysis::{Analysis, Scope, Target};
    use stiffness_report::dataset::{Dataset, ModelId};
    use stiffness_report::figures::short;
    use stiffness_stats::Method;
    for (arch, published) in [("resnet18", Some("-0.36")), ("resnet-cifar-test", None)] {
        let dir = temp_dir(&format!("paper-in-{arch}"));
        write_dir(&dir, &all_records(), true);
        let mut m = manifest();
        m.arch = arch.into();
        fs::write(
            dir.join(stiffness_records::MANIFEST_JSON),
            serde_json::to_string(&m).unwrap(),
        )
        .unwrap();
        let out = temp_dir(&format!("paper-out-{arch}"));
        write_report(std::slice::from_ref(&dir), &out, &ReportOptions::default()).unwrap();
        let rows = paper_rows(&fs::read_to_string(out.join("report.md")).unwrap());
        let data = Dataset::load(&[dir]).unwrap();
        let a = Analysis::new(&data, false).unwrap();
        // The last square block (layer2.1), J_B then J_F, both spectra: 4
        // tests and 2 means each.
        assert_eq!(rows.len(), 24, "{rows:?}");
        assert!(rows[..12].iter().all(|r| r[2] == "block"), "{rows:?}");
        assert!(
            rows[12..].iter().all(|r| r[2] == "residual" && r[5] == "–"),
            "{rows:?}"
        );
        for variant in [SpectrumVariant::Exact, SpectrumVariant::PaperCompat] {
            let key = GroupKey {
                model: ModelId {
                    name: "resnet-test".into(),
                    sha256: SHA.into(),
                },
                block_index: 3,
                block: "layer2.1".into(),
                kind: JacobianKind::Block,
                spectrum: variant,
            };
            let test = a
                .find(
                    &key,
                    Metric::StiffnessIndex,
                    Scope::Labels,
                    Target::Accuracy,
                    Method::Pearson,
                )
                .unwrap();
            let c = test.result.as_ref().unwrap();
            let row = |what: &str| {
                rows.iter()
                    .find(|r| r[2] == "block" && r[3] == variant.to_string() && r[4] == what)
                    .unwrap()
            };
            let r = row("r(stiffness_index, accuracy)");
            assert_eq!(r[0..2], ["resnet-test", "layer2.1"]);
            assert_eq!(r[5], published.unwrap_or("–"), "{r:?}");
            assert_eq!(r[6], short(c.r));
            assert_eq!(r[7], "4");
            assert!(r[11].starts_with("significant") || r[11].starts_with("not significant"));
            assert_eq!(r[11].contains("paper's r"), published.is_some(), "{r:?}");
            let mean = a.overall(&key, Metric::StiffnessIndex).unwrap();
            let r = row("mean stiffness_index");
            assert_eq!(r[6], short(mean.summary.unwrap().mean));
            // The paper's ResNet50 means are shown only for a ResNet50.
            assert_eq!(r[5], "–");
        }
    }
}
