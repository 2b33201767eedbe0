//! The fuzzing regression corpus of `fuzz/` (target `model_from_state`, see
//! FUZZING.md) replayed on stable, and the byte format of its inputs.

use std::collections::BTreeMap;

use resnet_stiffness::model::fuzzing::{decode, encode, exercise};
use resnet_stiffness::model::ArchSpec;

/// Small architectures of every family, with widths that fit the format.
fn tiny_specs() -> Vec<ArchSpec> {
    let mut cifar = ArchSpec::preset("resnet8", 3, 4).unwrap();
    cifar.stem_width = 2;
    cifar.stage_planes = vec![2, 4, 8];
    let mut basic = ArchSpec::preset("resnet18", 1, 3).unwrap();
    basic.stage_blocks = vec![1, 1, 1, 1];
    basic.stem_width = 2;
    basic.stage_planes = vec![2, 4, 4, 8];
    let mut bottleneck = ArchSpec::preset("resnet50", 3, 5).unwrap();
    bottleneck.stage_blocks = vec![2, 1, 1, 1];
    bottleneck.stem_width = 4;
    bottleneck.stage_planes = vec![1, 1, 2, 2];
    vec![cifar, basic, bottleneck]
}

#[test]
fn encoded_architectures_decode_and_build() {
    for spec in tiny_specs() {
        let shapes: BTreeMap<String, Vec<usize>> = spec.expected_tensors().into_iter().collect();
        let bytes = encode(&shapes, 32).unwrap_or_else(|| panic!("{spec} does not encode"));
        let case = decode(&bytes);
        let decoded: BTreeMap<String, Vec<usize>> = case
            .weights
            .iter()
            .map(|(k, (s, _))| (k.clone(), s.clone()))
            .collect();
        assert_eq!(decoded, shapes, "{spec}");
        assert!(exercise(&bytes), "{spec} did not build");
        if let Some(dir) = std::env::var_os("WRITE_FUZZ_SEEDS") {
            let path = std::path::Path::new(&dir).join(format!(
                "{}-{}",
                spec.name(),
                spec.stage_planes.len()
            ));
            std::fs::write(path, &bytes).unwrap();
        }
    }
}

#[test]
fn fuzz_regression_inputs_do_not_panic() {
    let fuzz = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let target: fn(&[u8]) = |data| {
        exercise(data);
    };
    let replayed =
        stiffness_testdata::replay_fuzz_regressions(&fuzz, &[("model_from_state", target)]);
    assert!(replayed >= 1, "{replayed}");
}
