//! Loading the real checkpoints in the shared data folder.
mod common;

use stiffness_checkpoint::{load_state_dict, Format, Scalar, SourceDType};

/// Reference values computed independently (Python `pickle` + `struct`).
struct Expected {
    file: &'static str,
    best_prec1: f64,
    tensors: usize,
    elements: usize,
    /// (name, sum, first value, last value)
    checks: [(&'static str, f64, f64, f64); 3],
}

const AKAMASTER: [Expected; 4] = [
    Expected {
        file: "resnet20-12fca82f.th",
        best_prec1: 91.78000183105469,
        tensors: 97,
        elements: 271_098,
        checks: [
            (
                "conv1.weight",
                1.3100982000032673,
                -0.13818146288394928,
                0.3087101876735687,
            ),
            (
                "linear.weight",
                -0.04562738863751292,
                -1.0598125457763672,
                0.22667697072029114,
            ),
            (
                "layer3.2.bn2.running_var",
                10.665690739639103,
                0.3016022741794586,
                0.17508132755756378,
            ),
        ],
    },
    Expected {
        file: "resnet32-d509ac18.th",
        best_prec1: 92.78000144958496,
        tensors: 157,
        elements: 466_426,
        checks: [
            (
                "conv1.weight",
                1.961148000027606,
                0.40355396270751953,
                0.38600531220436096,
            ),
            (
                "linear.bias",
                0.0062164366245269775,
                0.1762789636850357,
                -0.08627279847860336,
            ),
            (
                "layer3.2.bn2.running_var",
                7.204736553132534,
                0.14675341546535492,
                0.1197926253080368,
            ),
        ],
    },
    Expected {
        file: "resnet44-014dd654.th",
        best_prec1: 93.1400016784668,
        tensors: 217,
        elements: 661_754,
        checks: [
            (
                "conv1.weight",
                1.544271791495703,
                0.06434207409620285,
                0.002886692062020302,
            ),
            (
                "linear.weight",
                -0.09602717775851488,
                -0.42093542218208313,
                0.7765446305274963,
            ),
            (
                "layer3.2.bn2.running_var",
                4.145126150920987,
                0.09731493145227432,
                0.06154000014066696,
            ),
        ],
    },
    Expected {
        file: "resnet56-4bfd9763.th",
        best_prec1: 93.62,
        tensors: 277,
        elements: 857_082,
        checks: [
            (
                "conv1.weight",
                -2.5577811515686335,
                -0.21604876220226288,
                -0.03236684203147888,
            ),
            (
                "linear.bias",
                -0.0014823153614997864,
                0.13465537130832672,
                -0.2721118628978729,
            ),
            (
                "layer3.2.bn2.running_var",
                2.700561105273664,
                0.05027766898274422,
                0.04845400154590607,
            ),
        ],
    },
];

#[test]
fn akamaster_legacy_checkpoints_load() {
    let Some(shared) = stiffness_testdata::shared("models") else {
        return;
    };
    for expected in &AKAMASTER {
        let path = shared
            .join("models/cifar10-resnet-akamaster")
            .join(expected.file);
        let loaded = load_state_dict(&path).unwrap();
        assert_eq!(loaded.format, Format::TorchLegacy);
        assert_eq!(
            loaded.metadata.get("best_prec1"),
            Some(&Scalar::Float(expected.best_prec1))
        );
        let state = &loaded.state;
        assert_eq!(state.len(), expected.tensors, "{}", expected.file);
        assert!(state.names().all(|n| !n.starts_with("module.")));
        let total: usize = state.iter().map(|(_, t)| t.numel()).sum();
        assert_eq!(total, expected.elements);
        assert!(state
            .iter()
            .all(|(_, t)| t.source_dtype == SourceDType::F32));
        assert_eq!(state.get("conv1.weight").unwrap().shape, vec![16, 3, 3, 3]);
        assert_eq!(state.get("linear.weight").unwrap().shape, vec![10, 64]);
        for (name, sum, first, last) in expected.checks {
            let t = state.get(name).unwrap();
            let got: f64 = t.values.iter().map(|&v| f64::from(v)).sum();
            assert!((got - sum).abs() < 1e-9, "{name}: {got} vs {sum}");
            assert_eq!(t.values.first().map(|&v| f64::from(v)), Some(first));
            assert_eq!(t.values.last().map(|&v| f64::from(v)), Some(last));
        }
    }
}

#[test]
fn resnet20_names_follow_the_architecture() {
    let Some(shared) = stiffness_testdata::shared("models") else {
        return;
    };
    let path = shared.join("models/cifar10-resnet-akamaster/resnet20-12fca82f.th");
    let state = load_state_dict(&path).unwrap().state;
    let names: Vec<&str> = state.names().collect();
    assert_eq!(
        &names[..5],
        &[
            "conv1.weight",
            "bn1.weight",
            "bn1.bias",
            "bn1.running_mean",
            "bn1.running_var"
        ]
    );
    assert_eq!(
        state.get("layer2.0.conv1.weight").unwrap().shape,
        vec![32, 16, 3, 3]
    );
    assert!(state.get("bn1.num_batches_tracked").is_none());
}

#[test]
fn torchvision_float16_safetensors_loads() {
    let Some(shared) = stiffness_testdata::shared("golden") else {
        return;
    };
    let loaded = load_state_dict(&shared.join("golden/tv_resnet18/weights.safetensors")).unwrap();
    assert_eq!(loaded.format, Format::Safetensors);
    let state = &loaded.state;
    let conv1 = state.get("conv1.weight").unwrap();
    assert_eq!(conv1.shape, vec![64, 3, 7, 7]);
    assert_eq!(conv1.source_dtype, SourceDType::F16);
    // Every value is exactly a float16.
    assert!(conv1
        .values
        .iter()
        .all(|&v| half::f16::from_f32(v).to_f32() == v));
    assert_eq!(state.get("fc.weight").unwrap().shape, vec![10, 512]);
    let tracked = state.get("bn1.num_batches_tracked").unwrap();
    assert_eq!(tracked.source_dtype, SourceDType::I64);
    assert!(tracked.shape.is_empty());
    // ResNet18: 20 convolutions, 20 BatchNorms (4 float tensors and
    // num_batches_tracked each), fc weight and bias.
    assert_eq!(state.len(), 20 + 20 * 5 + 2);
    let floats = state
        .iter()
        .filter(|(_, t)| t.source_dtype.is_float())
        .count();
    assert_eq!(floats, 20 + 20 * 4 + 2);
}
