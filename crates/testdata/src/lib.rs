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
