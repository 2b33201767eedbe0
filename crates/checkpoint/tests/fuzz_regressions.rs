//! The fuzzing regression corpus (`fuzz/regressions/<target>/`, see
//! FUZZING.md) replayed through every target's entry point on stable.

#[test]
fn fuzz_regression_inputs_do_not_panic() {
    let fuzz = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let replayed =
        stiffness_testdata::replay_fuzz_regressions(&fuzz, &stiffness_checkpoint::fuzzing::TARGETS);
    assert!(replayed >= 4, "{replayed}");
}
