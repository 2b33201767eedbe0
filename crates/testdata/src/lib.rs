//! Test support for the workspace's test suites: where the third-party shared
//! data lives (pretrained models, PyTorch golden outputs, CIFAR-10 JPEGs).
//! It is read in place, never copied into the repository.

use std::path::PathBuf;

/// The shared data folder: `$RESNET_STIFFNESS_SHARED`, else `../shared` next
/// to the workspace, when `needs` (a path inside it, e.g. `"golden"` or
/// `"data/cifar10-jpg/test"`) exists there.
///
/// When it is missing the test is skipped: `None`, after a `SKIPPED` line on
/// stderr naming the path and how to point at the data. With
/// `REQUIRE_SHARED_DATA=1` (as in CI) a missing folder fails the test instead.
pub fn shared(needs: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("RESNET_STIFFNESS_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    let wanted = dir.join(needs);
    if wanted.exists() {
        return Some(dir);
    }
    let message = format!(
        "shared data not found at {} (set RESNET_STIFFNESS_SHARED to the shared folder)",
        wanted.display()
    );
    assert!(
        std::env::var("REQUIRE_SHARED_DATA").as_deref() != Ok("1"),
        "{message}; REQUIRE_SHARED_DATA=1 makes this a failure"
    );
    eprintln!("SKIPPED: {message}");
    None
}

/// A fuzz target: its name (the folder of its inputs) and entry point.
pub type FuzzTarget<'a> = (&'a str, fn(&[u8]));

/// Replay a fuzzing regression corpus: every file of
/// `fuzz_dir/regressions/<target>/` through its target's entry point (a
/// panic fails the test). Every target must have at least one file; returns
/// the number of inputs replayed.
pub fn replay_fuzz_regressions(fuzz_dir: &std::path::Path, targets: &[FuzzTarget<'_>]) -> usize {
    let mut replayed = 0;
    for (name, run) in targets {
        let dir = fuzz_dir.join("regressions").join(name);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{}: no regression inputs", dir.display());
        for file in files {
            let data = std::fs::read(&file).unwrap();
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(outcome.is_ok(), "{} panicked on {}", name, file.display());
            replayed += 1;
        }
    }
    replayed
}
