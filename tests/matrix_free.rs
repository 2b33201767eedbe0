//! The matrix-free (Krylov) metrics against independent references:
//! - PyTorch's dense eigenvalues of the full Jacobian (shared/golden
//!   metrics.json: ResNet20 layer2.2 and layer3.2, pytorch-cifar ResNet18
//!   and PreActResNet18 layer4.1, both kinds), to 1e-6 relative with the
//!   float32 operator the analysis uses;
//! - our dense path (itself checked against PyTorch and against the full
//!   dense solve) on random blocks of every family, float64, both kinds,
//!   square (extremes, Söderlind) and non-square (sigma_max), and on the
//!   torchvision ResNet50 golden Bottlenecks;
//! - records: evidence present, whole-spectrum metrics null with a reason.

mod common;

use std::path::Path;

use candle_core::DType;
use common::{blocks, input, npy_tensor, shared};
use resnet_stiffness::analysis::linearize::Linearization;
use resnet_stiffness::analysis::measure::measure;
use resnet_stiffness::model::random::{Masks, Rng};
use resnet_stiffness::model::{self, JacobianKind};
use serde_json::Value;
use stiffness_records::{Method, Record, SpectrumVariant};
use stiffness_spectrum::Par;

fn krylov(lin: &Linearization<'_>, kind: JacobianKind) -> Record {
    let m = measure(lin, kind, SpectrumVariant::Exact, Par::Seq, Method::Krylov).unwrap();
    m.metrics
}

fn dense(lin: &Linearization<'_>, kind: JacobianKind) -> Record {
    let m = measure(lin, kind, SpectrumVariant::Exact, Par::Seq, Method::Dense).unwrap();
    m.metrics
}

/// |ours - want| <= rel * max(|want|, floor).
fn close(ours: Option<f64>, want: f64, rel: f64, floor: f64, what: &str) {
    let ours = ours.unwrap_or_else(|| panic!("{what}: not computed"));
    let err = (ours - want).abs() / want.abs().max(floor);
    assert!(
        err <= rel,
        "{what}: krylov {ours}, reference {want}, rel {err:e}"
    );
}

/// The extremes of a Krylov record equal those of a dense one.
fn same_extremes(k: &Record, d: &Record, rel: f64, what: &str) {
    assert_eq!(k.method, Method::Krylov);
    assert_eq!(k.converged, Some(true), "{what}: {k:?}");
    if let Some(rho) = d.spectral_radius {
        let floor = 1e-6 * rho.max(1.0);
        close(
            k.max_re,
            d.max_re.unwrap(),
            rel,
            floor,
            &format!("{what} max_re"),
        );
        close(
            k.min_re,
            d.min_re.unwrap(),
            rel,
            floor,
            &format!("{what} min_re"),
        );
        close(k.spectral_radius, rho, rel, floor, &format!("{what} rho"));
        close(
            k.soderlind,
            d.soderlind.unwrap(),
            rel,
            floor,
            &format!("{what} soderlind"),
        );
        if let Some(e) = d.euler_amplification {
            close(
                k.euler_amplification,
                e,
                rel,
                floor,
                &format!("{what} euler"),
            );
        }
        assert!(k.neg_share.is_none() && k.n_zero.is_none() && k.stiffness_ratio.is_none());
        assert!(k.not_computed.as_deref().unwrap().contains("neg_share"));
        assert!(k.max_re_residual.unwrap() <= k.krylov_tol.unwrap());
    } else {
        let s = d.sigma_max.unwrap();
        close(k.sigma_max, s, rel, 1e-12, &format!("{what} sigma_max"));
        // sigma_min is 0 when the rank bound proves it (both paths), else
        // not computed matrix-free.
        if k.sigma_min.is_some() {
            assert_eq!((k.sigma_min, d.sigma_min), (Some(0.0), Some(0.0)), "{what}");
        }
    }
    assert!(k.applications.unwrap() > 0 && k.restarts.is_some());
    assert!(k.krylov_dim.is_some_and(|d| (2..=96).contains(&d)), "{k:?}");
}

#[test]
fn krylov_matches_dense_on_random_blocks_of_every_family() {
    let mut rng = Rng(31);
    for masks in [Masks::Random, Masks::AllOn] {
        for (block, shape) in blocks(&mut rng, masks) {
            let x = input(&mut rng, shape);
            let lin = Linearization::new(&block, &block, &x).unwrap();
            for kind in JacobianKind::ALL {
                let what = format!("{} {shape:?} {kind:?} {masks:?}", block.name);
                same_extremes(&krylov(&lin, kind), &dense(&lin, kind), 1e-6, &what);
            }
        }
    }
}

/// The golden folder's model (float32) and metrics.json.
fn golden(dir: &Path, model: &Path) -> (model::ResNet, model::ResNet, Value) {
    let net32 = model::load(model, None, DType::F32).unwrap().model;
    let net64 = model::load(model, None, DType::F64).unwrap().model;
    let metrics =
        serde_json::from_str(&std::fs::read_to_string(dir.join("metrics.json")).unwrap()).unwrap();
    (net32, net64, metrics)
}

#[test]
fn krylov_extremes_match_pytorch_dense_eigenvalues() {
    let Some(shared) = shared() else { return };
    let golden_dir = shared.join("golden");
    let cases = [
        (
            "resnet20",
            shared.join("models/cifar10-resnet-akamaster/resnet20-12fca82f.th"),
        ),
        (
            "cifar_resnet18",
            golden_dir.join("cifar_resnet18/weights.safetensors"),
        ),
        (
            "cifar_preact_resnet18",
            golden_dir.join("cifar_preact_resnet18/weights.safetensors"),
        ),
    ];
    for (net_name, model_path) in cases {
        let dir = golden_dir.join(net_name);
        let (net32, net64, metrics) = golden(&dir, &model_path);
        for (name, block_metrics) in metrics["blocks"].as_object().unwrap() {
            let i = net32.blocks.iter().position(|b| &b.name == name).unwrap();
            let x = npy_tensor(&dir.join(format!("blocks/{name}.in.npy")), DType::F32);
            let lin = Linearization::new(&net32.blocks[i], &net64.blocks[i], &x).unwrap();
            for (kind, key) in [
                (JacobianKind::Block, "whole"),
                (JacobianKind::Residual, "branch_F"),
            ] {
                let want = &block_metrics[key];
                let k = krylov(&lin, kind);
                let what = format!("{net_name} {name} {kind:?}");
                assert_eq!(k.converged, Some(true), "{what}: {k:?}");
                let rho = want["spectral_radius"].as_f64().unwrap();
                let floor = 1e-6 * rho.max(1.0);
                for (ours, field) in [
                    (k.max_re, "max_re"),
                    (k.min_re, "min_re"),
                    (k.spectral_radius, "spectral_radius"),
                ] {
                    let w = want[field].as_f64().unwrap();
                    close(ours, w, 1e-6, floor, &format!("{what} {field}"));
                }
            }
        }
    }
}

#[test]
fn krylov_matches_dense_on_torchvision_bottlenecks() {
    let Some(shared) = shared() else { return };
    let dir = shared.join("golden/tv_resnet50");
    let path = dir.join("weights.safetensors");
    let net = model::load(&path, None, DType::F64).unwrap().model;
    let mut checked = 0;
    // Stages 3 and 4 and the downsampling layer3.0 (sigma_max): the dense
    // reference of the larger stage-1/2 blocks takes minutes.
    for block in net.blocks.iter().filter(|b| b.name.as_str() >= "layer3") {
        let file = dir.join(format!("blocks/{}.in.npy", block.name));
        if !file.exists() {
            continue;
        }
        let x = npy_tensor(&file, DType::F64);
        let lin = Linearization::new(block, block, &x).unwrap();
        for kind in JacobianKind::ALL {
            let what = format!("tv_resnet50 {} {kind:?}", block.name);
            same_extremes(&krylov(&lin, kind), &dense(&lin, kind), 1e-6, &what);
            checked += 1;
        }
    }
    assert!(checked >= 4, "only {checked} tv_resnet50 blocks checked");
}
