//! Truncated and corrupted inputs give errors: never a panic, a hang or a
//! huge allocation. Every allocation is watched by a tracking allocator.
mod common;

use common::Rng;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use stiffness_checkpoint::npy::{parse_npy, NpyArray, NpyData};
use stiffness_checkpoint::pickle::unpickle;
use stiffness_checkpoint::safetensors::{parse_safetensors, save_safetensors, SaveDType};
use stiffness_checkpoint::{parse_state_dict, StateDict, Tensor};

/// Records the largest single allocation.
struct Tracking;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

type Parser = fn(&[u8]) -> bool;

fn checkpoint(b: &[u8]) -> bool {
    parse_state_dict(b).is_ok()
}
fn npy(b: &[u8]) -> bool {
    parse_npy(b).is_ok()
}
fn pickle(b: &[u8]) -> bool {
    unpickle(b).is_ok()
}
fn safetensors(b: &[u8]) -> bool {
    parse_safetensors(b).is_ok()
}

/// Runs `parse` and checks that no single allocation exceeded what the
/// input size allows.
fn run(name: &str, parse: Parser, input: &[u8]) -> bool {
    LARGEST.store(0, Ordering::Relaxed);
    let ok = parse(input);
    let largest = LARGEST.load(Ordering::Relaxed);
    let limit = input.len() * 16 + (128 << 20);
    assert!(
        largest <= limit,
        "{name}: allocated {largest} bytes for {} input bytes",
        input.len()
    );
    ok
}

/// Truncations at every offset of the first `dense` bytes and `sparse`
/// spread offsets after that (all must fail), then `flips` random byte
/// changes within the first `flip_range` bytes (must not panic).
fn mutate(
    name: &str,
    parse: Parser,
    input: &[u8],
    sparse: usize,
    flips: usize,
    flip_range: usize,
) -> usize {
    assert!(
        run(name, parse, input),
        "{name}: the unmodified input must load"
    );
    let dense = input.len().min(600);
    let step = (input.len() / sparse.max(1)).max(1);
    let cuts = (0..dense).chain((dense..input.len()).step_by(step));
    let mut cases = 0;
    for cut in cuts {
        assert!(
            !run(name, parse, &input[..cut]),
            "{name}: truncated at {cut} loaded"
        );
        cases += 1;
    }
    let mut rng = Rng::new(0x5eed ^ input.len() as u64);
    let mut copy = input.to_vec();
    for _ in 0..flips {
        let pos = rng.below(input.len().min(flip_range));
        let old = copy[pos];
        copy[pos] = match rng.below(4) {
            0 => 0xff,
            1 => 0,
            2 => old ^ (1 << rng.below(8)),
            _ => rng.below(256) as u8,
        };
        run(name, parse, &copy);
        copy[pos] = old;
        cases += 1;
    }
    cases
}

fn small_safetensors() -> Vec<u8> {
    let dir = common::temp_dir("mutations-st");
    let path = dir.join("m.safetensors");
    let mut state = StateDict::new();
    state.insert(
        "a.weight",
        Tensor::new(vec![2, 3], (0..6).map(|i| i as f32).collect()).unwrap(),
    );
    state.insert("b", Tensor::new(vec![1], vec![0.5]).unwrap());
    let meta = [("format".to_string(), "pt".to_string())].into();
    save_safetensors(&path, &state, SaveDType::F16, &meta).unwrap();
    std::fs::read(path).unwrap()
}

fn small_npy() -> Vec<u8> {
    let dir = common::temp_dir("mutations-npy");
    let path = dir.join("m.npy");
    let array = NpyArray {
        shape: vec![2, 2],
        data: NpyData::C128(vec![[1.0, 2.0]; 4]),
    };
    stiffness_checkpoint::npy::write_npy(&path, &array).unwrap();
    std::fs::read(path).unwrap()
}

#[test]
fn corrupt_inputs_fail_cleanly() {
    let start = std::time::Instant::now();
    let mut cases = 0;
    cases += mutate(
        "legacy",
        checkpoint,
        &common::samples::sample_legacy(),
        200,
        1500,
        usize::MAX,
    );
    cases += mutate(
        "zip",
        checkpoint,
        &common::samples::sample_zip(),
        200,
        1500,
        usize::MAX,
    );
    cases += mutate(
        "safetensors",
        checkpoint,
        &small_safetensors(),
        100,
        500,
        usize::MAX,
    );
    cases += mutate(
        "safetensors-direct",
        safetensors,
        &small_safetensors(),
        50,
        200,
        usize::MAX,
    );
    cases += mutate("npy", npy, &small_npy(), 100, 500, usize::MAX);
    cases += mutate(
        "cifar-pickle",
        pickle,
        &common::samples::cifar_python2("labels", 2),
        100,
        1000,
        400,
    );
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for name in [
        "plain_p0.pkl",
        "plain_p2.pkl",
        "plain_p5.pkl",
        "numpy_p2.pkl",
    ] {
        let bytes = std::fs::read(fixtures.join(name)).unwrap();
        cases += mutate(name, pickle, &bytes, 100, 300, usize::MAX);
    }
    if let Some(shared) = stiffness_testdata::shared("models") {
        let th = std::fs::read(shared.join("models/cifar10-resnet-akamaster/resnet20-12fca82f.th"))
            .unwrap();
        cases += mutate("resnet20.th", checkpoint, &th, 40, 150, 16_000);
        let npy_bytes = std::fs::read(shared.join("golden/resnet20/input.npy")).unwrap();
        cases += mutate("input.npy", npy, &npy_bytes, 50, 200, 200);
    }
    eprintln!("{cases} corrupted inputs in {:.1?}", start.elapsed());
}
