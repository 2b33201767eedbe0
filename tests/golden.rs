//! The model against PyTorch golden data (shared/golden, see its README):
//! logits and block outputs to 1e-4 relative (float32), JVP probes of the
//! whole block and of the branch, and VJP probes by candle's reverse mode and
//! by the model's own adjoint, to 1e-9 relative (float64), for the seven
//! networks of five families (torchvision ResNet18/50, CIFAR ResNet20,
//! pytorch-cifar ResNet18 and PreActResNet18, WRN-16-4, a grouped ResNeXt).

mod common;

use std::path::{Path, PathBuf};

use candle_core::{DType, Tensor};
use common::{max_rel, npy_tensor, shared};
use resnet_stiffness::model::{self, JacobianKind, ResNet};

struct Golden {
    model: PathBuf,
    dir: PathBuf,
    /// (input file, blocks dir, logits file)
    inputs: Vec<(&'static str, &'static str, &'static str)>,
    /// Blocks whose probes are stored, per input (all, or the README's †).
    probed: usize,
    /// The architecture the file must be inferred as.
    arch: &'static str,
}

fn goldens(shared: &Path) -> Vec<Golden> {
    let g = shared.join("golden");
    vec![
        Golden {
            model: shared.join("models/cifar10-resnet-akamaster/resnet20-12fca82f.th"),
            dir: g.join("resnet20"),
            inputs: vec![("input.npy", "blocks", "logits.npy")],
            probed: 9,
            arch: "resnet20",
        },
        Golden {
            model: g.join("tv_resnet18/weights.safetensors"),
            dir: g.join("tv_resnet18"),
            inputs: vec![
                ("input.npy", "blocks", "logits.npy"),
                ("input64.npy", "blocks64", "logits64.npy"),
            ],
            probed: 8,
            arch: "resnet18",
        },
        Golden {
            model: g.join("tv_resnet50/weights.safetensors"),
            dir: g.join("tv_resnet50"),
            inputs: vec![("input.npy", "blocks", "logits.npy")],
            probed: 16,
            arch: "resnet50",
        },
        more(&g, "cifar_resnet18", "cifar-resnet18"),
        more(&g, "cifar_preact_resnet18", "preact-resnet18"),
        more(&g, "wrn_16_4", "wrn-16-4"),
        more(&g, "tv_resnext_mini", "resnext14_32x4d"),
    ]
}

/// A folder of the README's "More families": float16 weights, one input,
/// probes for four blocks.
fn more(g: &Path, folder: &str, arch: &'static str) -> Golden {
    Golden {
        model: g.join(folder).join("weights.safetensors"),
        dir: g.join(folder),
        inputs: vec![("input.npy", "blocks", "logits.npy")],
        probed: 4,
        arch,
    }
}

/// Every file is inferred as the architecture it is.
#[test]
fn each_family_is_inferred_from_its_names() {
    let Some(shared) = shared() else { return };
    for golden in goldens(&shared) {
        let net = load(&golden.model, DType::F32);
        assert_eq!(net.spec.name(), golden.arch, "{}", golden.dir.display());
    }
}

fn load(path: &Path, dtype: DType) -> ResNet {
    model::load(path, None, dtype)
        .unwrap_or_else(|e| panic!("{e}"))
        .model
}

#[test]
fn logits_and_block_outputs_match_pytorch() {
    let Some(shared) = shared() else { return };
    for golden in goldens(&shared) {
        let net = load(&golden.model, DType::F32);
        for (input, blocks, logits) in &golden.inputs {
            let x = npy_tensor(&golden.dir.join(input), DType::F32);
            let mut inputs = Vec::new();
            let ours = net
                .forward_visiting(&x, |_, h| {
                    inputs.push(h.clone());
                    Ok(())
                })
                .unwrap();
            let want = npy_tensor(&golden.dir.join(logits), DType::F32);
            let err = max_rel(&ours, &want);
            assert!(
                err <= 1e-4,
                "{}: logits rel err {err}",
                golden.dir.display()
            );
            for (i, block) in net.blocks.iter().enumerate() {
                let base = golden.dir.join(blocks).join(&block.name);
                let gin = npy_tensor(&with_ext(&base, "in.npy"), DType::F32);
                let gout = npy_tensor(&with_ext(&base, "out.npy"), DType::F32);
                assert!(
                    max_rel(&inputs[i], &gin) <= 1e-4,
                    "{} input of {}",
                    golden.dir.display(),
                    block.name
                );
                let err = max_rel(&block.forward(&gin).unwrap(), &gout);
                assert!(
                    err <= 1e-4,
                    "{} block {}: rel err {err}",
                    golden.dir.display(),
                    block.name
                );
            }
        }
    }
}

/// The blocks of `net` whose probe files are in `dir`.
fn probed_blocks<'a>(net: &'a ResNet, dir: &Path) -> Vec<&'a model::ResidualBlock> {
    net.blocks
        .iter()
        .filter(|b| with_ext(&dir.join(&b.name), "p.npy").exists())
        .collect()
}

fn with_ext(base: &Path, ext: &str) -> PathBuf {
    PathBuf::from(format!("{}.{ext}", base.display()))
}

#[test]
fn jvp_probes_match_pytorch_in_float64() {
    let Some(shared) = shared() else { return };
    for golden in goldens(&shared) {
        let net = load(&golden.model, DType::F64);
        for (_, blocks, _) in &golden.inputs {
            let probed = probed_blocks(&net, &golden.dir.join(blocks));
            assert_eq!(probed.len(), golden.probed, "{}", golden.dir.display());
            for block in probed {
                let base = golden.dir.join(blocks).join(&block.name);
                let x = npy_tensor(&with_ext(&base, "in.npy"), DType::F64);
                let p = npy_tensor(&with_ext(&base, "p.npy"), DType::F64);
                let trace = block.trace(&x).unwrap();
                for (kind, file) in [
                    (JacobianKind::Block, "jvp.npy"),
                    (JacobianKind::Residual, "F.jvp.npy"),
                ] {
                    let ours = block.jvp(&trace, kind, &p).unwrap();
                    let want = npy_tensor(&with_ext(&base, file), DType::F64);
                    let err = max_rel(&ours, &want);
                    assert!(
                        err <= 1e-9,
                        "{} {} {file}: rel err {err}",
                        golden.dir.display(),
                        block.name
                    );
                }
            }
        }
    }
}

/// J^T q two ways against PyTorch's float64 VJP probes, for every probed
/// block of the seven networks: the model's own adjoint
/// `ResidualBlock::vjp` (transposed convolutions, the option-A scatter, the
/// pre-activation tap) and candle's reverse mode through the forward pass;
/// and the adjoint against our JVP by the dot-product identity.
#[test]
fn vjp_probes_match_pytorch_by_adjoint_and_reverse_mode() {
    let Some(shared) = shared() else { return };
    for golden in goldens(&shared) {
        let net = load(&golden.model, DType::F64);
        for (_, blocks, _) in &golden.inputs {
            let probed = probed_blocks(&net, &golden.dir.join(blocks));
            assert_eq!(probed.len(), golden.probed, "{}", golden.dir.display());
            for block in probed {
                let base = golden.dir.join(blocks).join(&block.name);
                let x = npy_tensor(&with_ext(&base, "in.npy"), DType::F64);
                let p = npy_tensor(&with_ext(&base, "p.npy"), DType::F64);
                let q = npy_tensor(&with_ext(&base, "q.npy"), DType::F64);
                let (_, c, h, w) = x.dims4().unwrap();
                let trace = block.trace(&x).unwrap();
                for (kind, file) in [
                    (JacobianKind::Block, "vjp.npy"),
                    (JacobianKind::Residual, "F.vjp.npy"),
                ] {
                    let what = format!("{} {} {file}", golden.dir.display(), block.name);
                    let want = npy_tensor(&with_ext(&base, file), DType::F64);
                    let vjp = block.vjp(&trace, kind, &q, [c, h, w]).unwrap();
                    let err = max_rel(&vjp, &want);
                    assert!(err <= 1e-9, "{what}: adjoint rel err {err}");
                    let reverse = reverse_mode(block, kind, &x, &q);
                    let err = max_rel(&reverse, &want);
                    assert!(err <= 1e-9, "{what}: reverse mode rel err {err}");
                    let jp = block.jvp(&trace, kind, &p).unwrap();
                    let (lhs, rhs) = (dot(&q, &jp), dot(&vjp, &p));
                    assert!(
                        (lhs - rhs).abs() <= 1e-10 * lhs.abs().max(1.0),
                        "{what}: <q, J p> = {lhs} vs <J^T q, p> = {rhs}"
                    );
                }
            }
        }
    }
}

/// J^T q by candle's reverse mode through the block's forward pass.
fn reverse_mode(
    block: &model::ResidualBlock,
    kind: JacobianKind,
    x: &Tensor,
    q: &Tensor,
) -> Tensor {
    let var = candle_core::Var::from_tensor(x).unwrap();
    let out = match kind {
        JacobianKind::Block => block.forward(var.as_tensor()).unwrap(),
        JacobianKind::Residual => block.branch.forward(var.as_tensor()).unwrap(),
    };
    let loss = (out * q).unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    grads.get(var.as_tensor()).expect("gradient").clone()
}

fn dot(a: &Tensor, b: &Tensor) -> f64 {
    (a * b)
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}
