//! Synthetic records shared by the integration tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use stiffness_records::store::write_eigenvalues;
use stiffness_records::{
    write_records, ClassEval, EvalSummary, JacobianKind, Manifest, Record, SpectrumVariant,
    EVAL_JSON, MANIFEST_JSON,
};

pub const SHA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
pub const BLOCKS: [(&str, bool); 4] = [
    ("layer1.0", true),
    ("layer1.1", true),
    ("layer2.0", false),
    ("layer2.1", true),
];
pub const LABELS: [&str; 4] = ["airplane", "bird", "cat", "dog"];
pub const SAMPLES: usize = 12;

/// A fresh, empty directory under Cargo's per-target scratch directory
/// (left in place after the test for inspection; emptied on the next run).
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("stiffness-report-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn label_of(sample: usize) -> usize {
    sample % LABELS.len()
}

pub fn loss_of(sample: usize) -> f64 {
    0.1 + 0.05 * sample as f64 + 0.3 * label_of(sample) as f64
}

pub fn correct_of(sample: usize) -> bool {
    sample % 3 != 1
}

/// The stiffness index of (sample, block, kind, variant), with planted
/// non-finite values: +inf at sample 1 of layer1.0, NaN at sample 5 of
/// layer1.0, both for the residual kind of the exact spectrum.
pub fn stiffness_index(
    sample: usize,
    block: usize,
    kind: JacobianKind,
    variant: SpectrumVariant,
) -> f64 {
    if kind == JacobianKind::Residual && variant == SpectrumVariant::Exact && block == 0 {
        match sample {
            1 => return f64::INFINITY,
            5 => return f64::NAN,
            _ => {}
        }
    }
    let k = if kind == JacobianKind::Block {
        1.0
    } else {
        2.0
    };
    let v = if variant == SpectrumVariant::Exact {
        1.0
    } else {
        -0.5
    };
    v * (k * (block as f64 + 1.0) + 0.25 * sample as f64 + 0.1 * (sample * sample % 7) as f64)
}

pub fn record(sample: usize, block: usize, kind: JacobianKind, variant: SpectrumVariant) -> Record {
    let (name, square) = BLOCKS[block];
    let label = label_of(sample);
    let eig = square && variant == SpectrumVariant::Exact;
    let si = stiffness_index(sample, block, kind, variant);
    let sigma = !square && variant == SpectrumVariant::Exact;
    let s = sample as f64;
    Record {
        model: "resnet-test".into(),
        model_sha256: SHA.into(),
        sample,
        label,
        label_name: LABELS[label].into(),
        predicted: if correct_of(sample) {
            label
        } else {
            (label + 1) % LABELS.len()
        },
        loss: loss_of(sample),
        correct: correct_of(sample),
        block: name.into(),
        block_index: block,
        kind,
        spectrum: variant,
        square,
        n: 64,
        n_out: if square { 64 } else { 32 },
        n_active: eig.then_some(40),
        solved_size: eig.then_some(40),
        max_re: (eig || variant == SpectrumVariant::PaperCompat).then_some(1.0 + 0.1 * s),
        min_re: (eig || variant == SpectrumVariant::PaperCompat).then_some(-0.5 - 0.01 * s),
        stiffness_index: (eig || variant == SpectrumVariant::PaperCompat).then_some(si),
        stiffness_ratio: eig.then_some(10.0 + s),
        neg_share: (eig || variant == SpectrumVariant::PaperCompat)
            .then_some(0.3 + 0.02 * s - 0.05 * block as f64),
        n_zero: (eig || variant == SpectrumVariant::PaperCompat).then_some(24),
        spectral_radius: eig.then_some(1.5 + 0.3 * block as f64 + 0.01 * s * s),
        soderlind: eig.then_some(-0.2 + 0.03 * (sample % 5) as f64),
        euler_unstable_share: (eig && kind == JacobianKind::Residual)
            .then_some(0.1 * (sample % 4) as f64),
        relative_step: eig.then_some(0.5 + 0.01 * s),
        sigma_max: sigma.then_some(3.0 + 0.1 * s),
        sigma_min: sigma.then_some(0.1 + 0.01 * s),
        sigma_ratio: sigma.then_some((3.0 + 0.1 * s) / (0.1 + 0.01 * s)),
        eigenvalues_file: (eig && sample == 0 && block == 3)
            .then(|| format!("eig/s0_{name}_{kind}.npy")),
        seconds: 0.5,
        failure: None,
        ..Record::default()
    }
}

/// Every synthetic record, in a scrambled order.
pub fn all_records() -> Vec<Record> {
    let mut out = Vec::new();
    for variant in [SpectrumVariant::PaperCompat, SpectrumVariant::Exact] {
        for kind in [JacobianKind::Residual, JacobianKind::Block] {
            for block in (0..BLOCKS.len()).rev() {
                for sample in 0..SAMPLES {
                    out.push(record(sample, block, kind, variant));
                }
            }
        }
    }
    out
}

pub fn manifest() -> Manifest {
    Manifest {
        tool_version: "0.1.0".into(),
        model_path: "/models/resnet-test.pt".into(),
        name: None,
        model_sha256: SHA.into(),
        arch: "resnet-cifar-test".into(),
        data_path: "/data/cifar10".into(),
        data_format: "cifar10-bin".into(),
        normalize: "cifar10".into(),
        input_shape: [3, 32, 32],
        class_names: LABELS.iter().map(|s| s.to_string()).collect(),
        per_class: Some(3),
        samples: None,
        seed: 7,
        blocks: BLOCKS.iter().map(|b| b.0.to_string()).collect(),
        kinds: vec![JacobianKind::Block, JacobianKind::Residual],
        spectrum: SpectrumVariant::Exact,
        tolerance: "1e-6 * max(1, rho)".into(),
        shard: None,
        created: "2024-01-01T00:00:00Z".into(),
        extra: Default::default(),
    }
}

pub fn eval_summary() -> EvalSummary {
    EvalSummary {
        accuracy: 0.8,
        loss: 0.6,
        count: 400,
        per_class: (0..LABELS.len())
            .map(|l| ClassEval {
                label: l,
                name: LABELS[l].into(),
                accuracy: [0.9, 0.7, 0.85, 0.6][l],
                loss: [0.3, 0.9, 0.5, 1.2][l],
                count: 100,
            })
            .collect(),
    }
}

/// Writes `records` (plus manifest, optional eval.json and eigenvalue
/// files) into `dir`.
pub fn write_dir(dir: &Path, records: &[Record], with_eval: bool) {
    std::fs::create_dir_all(dir.join("eig")).unwrap();
    write_records(dir, records).unwrap();
    let m = serde_json::to_string_pretty(&manifest()).unwrap();
    std::fs::write(dir.join(MANIFEST_JSON), m).unwrap();
    if with_eval {
        std::fs::write(
            dir.join(EVAL_JSON),
            serde_json::to_string(&eval_summary()).unwrap(),
        )
        .unwrap();
    }
    for r in records {
        if let Some(f) = &r.eigenvalues_file {
            let eig: Vec<[f64; 2]> = (0..40)
                .map(|i| {
                    let t = i as f64 / 40.0 * std::f64::consts::TAU;
                    [-0.8 + 1.1 * t.cos(), 0.6 * t.sin()]
                })
                .chain((0..24).map(|_| [0.0, 0.0]))
                .collect();
            write_eigenvalues(&dir.join(f), &eig).unwrap();
        }
    }
}
