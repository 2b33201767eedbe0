//! Truncated and bit-flipped inputs of every format: always an error or a
//! valid data set, never a panic. Deterministic (fixed-seed xorshift).

mod common;

use std::path::Path;

use common::{cifar_records, gzip, idx_bytes, TempDir};
use stiffness_checkpoint::npy::{write_npy, NpyArray, NpyData};
use stiffness_data::{
    load_rgb, parse_cifar_bin, parse_cifar_py, parse_idx_pair, parse_npy_pair, DataError,
    ImageSource,
};

/// Deterministic pseudo-random numbers.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 as usize
    }
}

/// Truncations at `steps` lengths and `flips` random byte changes of `valid`.
fn mutations(valid: &[u8], steps: usize, flips: usize, seed: u64) -> Vec<Vec<u8>> {
    let stride = (valid.len() / steps).max(1);
    let mut out: Vec<Vec<u8>> = (0..valid.len())
        .step_by(stride)
        .map(|n| valid[..n].to_vec())
        .collect();
    out.extend((0..16.min(valid.len())).map(|k| valid[..valid.len() - k - 1].to_vec()));
    let mut rng = XorShift(seed);
    for _ in 0..flips {
        let mut m = valid.to_vec();
        for _ in 0..1 + rng.next() % 3 {
            // Favour the header, where most of the structure is.
            let at = if rng.next() & 1 == 0 {
                rng.next() % valid.len().min(64)
            } else {
                rng.next() % valid.len()
            };
            m[at] = match rng.next() % 3 {
                0 => m[at] ^ (1 << (rng.next() % 8)),
                1 => 0xff,
                _ => 0,
            };
        }
        out.push(m);
    }
    let mut extended = valid.to_vec();
    extended.extend_from_slice(b"trailing");
    out.push(extended);
    out
}

/// Parse result: an error that names `name`, or a source whose images all load.
fn check(result: Result<Box<dyn ImageSource>, DataError>, name: &str) -> bool {
    match result {
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains(name), "error does not name {name}: {msg}");
            false
        }
        Ok(source) => {
            for i in 0..source.len() {
                let img = source
                    .load(i)
                    .unwrap_or_else(|e| panic!("{name}: image {i}: {e}"));
                assert_eq!(img.pixels.len(), img.channels * img.height * img.width);
                assert!(source.label(i) < source.class_names().len());
            }
            true
        }
    }
}

/// A byte-level parser under test.
type Parser<'a> = dyn Fn(&[u8]) -> Result<Box<dyn ImageSource>, DataError> + 'a;

/// Run `parse` on every mutation; returns (cases, errors).
fn run(valid: &[u8], steps: usize, flips: usize, parse: &Parser, name: &str) -> (usize, usize) {
    assert!(check(parse(valid), name), "the valid input must parse");
    let cases = mutations(valid, steps, flips, valid.len() as u64 | 1);
    let errors = cases.iter().filter(|m| !check(parse(m), name)).count();
    (cases.len(), errors)
}

#[test]
fn cifar_bin_mutations() {
    for (labels, name) in [
        (vec![&[3u8][..], &[9]], "data_batch_1.bin"),
        (vec![&[1u8, 99][..], &[0, 7]], "train.bin"),
    ] {
        let valid = cifar_records(&labels);
        let (cases, errors) = run(
            &valid,
            300,
            300,
            &|b| parse_cifar_bin(b.to_vec(), Path::new(name)),
            name,
        );
        assert!(
            errors > cases / 2,
            "{name}: only {errors} of {cases} rejected"
        );
    }
}

#[test]
fn idx_mutations_plain_and_gzipped() {
    let images = idx_bytes(&[2, 3, 4], &(0..24).collect::<Vec<u8>>());
    let labels = idx_bytes(&[2], &[4, 7]);
    for gz in [false, true] {
        let (img, lab) = if gz {
            (gzip(&images), gzip(&labels))
        } else {
            (images.clone(), labels.clone())
        };
        let name = "t10k-images-idx3-ubyte";
        let parse_images = |b: &[u8]| {
            parse_idx_pair(
                b,
                &lab,
                Path::new(name),
                Path::new("t10k-labels-idx1-ubyte"),
            )
        };
        let (cases, errors) = run(&img, 200, 400, &parse_images, name);
        assert!(
            errors > cases / 2,
            "gz {gz}: only {errors} of {cases} rejected"
        );
        let parse_labels = |b: &[u8]| {
            parse_idx_pair(
                &img,
                b,
                Path::new(name),
                Path::new("t10k-labels-idx1-ubyte"),
            )
        };
        run(&lab, 200, 400, &parse_labels, "labels-idx1");
    }
}

fn npy_bytes(dir: &TempDir, name: &str, array: &NpyArray) -> Vec<u8> {
    let path = dir.path(name);
    write_npy(&path, array).unwrap();
    std::fs::read(path).unwrap()
}

#[test]
fn npy_mutations() {
    let dir = TempDir::new("npy-mut");
    let images = npy_bytes(
        &dir,
        "images.npy",
        &NpyArray {
            shape: vec![2, 3, 2, 2],
            data: NpyData::U8((0..24).collect()),
        },
    );
    let nhwc = npy_bytes(
        &dir,
        "nhwc.npy",
        &NpyArray {
            shape: vec![2, 2, 2, 3],
            data: NpyData::F32(vec![0.5; 24]),
        },
    );
    let labels = npy_bytes(
        &dir,
        "labels.npy",
        &NpyArray {
            shape: vec![2],
            data: NpyData::I64(vec![0, 5]),
        },
    );
    for valid in [&images, &nhwc] {
        let parse =
            |b: &[u8]| parse_npy_pair(b, &labels, Path::new("images.npy"), Path::new("labels.npy"));
        run(valid, 300, 500, &parse, "images.npy");
    }
    let parse =
        |b: &[u8]| parse_npy_pair(&images, b, Path::new("images.npy"), Path::new("labels.npy"));
    run(&labels, 200, 300, &parse, "labels.npy");
}

#[test]
fn cifar_py_mutations() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for name in ["cifar10_test_batch", "cifar100_train"] {
        let valid = std::fs::read(fixtures.join(name)).unwrap();
        let (cases, errors) = run(
            &valid,
            300,
            400,
            &|b| parse_cifar_py(b, Path::new(name), None),
            name,
        );
        assert!(
            errors > cases / 2,
            "{name}: only {errors} of {cases} rejected"
        );
    }
    let meta = std::fs::read(fixtures.join("cifar10_batches.meta")).unwrap();
    let batch = std::fs::read(fixtures.join("cifar10_test_batch")).unwrap();
    run(
        &meta,
        157,
        300,
        &|m| parse_cifar_py(&batch, Path::new("test_batch"), Some(m)),
        "test_batch",
    );
}

#[test]
fn image_file_mutations() {
    let dir = TempDir::new("img-mut");
    let png_path = dir.path("valid.png");
    image::RgbImage::from_fn(8, 8, |x, y| image::Rgb([x as u8 * 30, y as u8 * 30, 7]))
        .save(&png_path)
        .unwrap();
    let jpg_path = dir.path("valid.jpg");
    image::RgbImage::from_fn(16, 16, |x, y| image::Rgb([x as u8 * 15, y as u8 * 15, 99]))
        .save(&jpg_path)
        .unwrap();
    let mut cases = 0;
    for valid_path in [png_path, jpg_path] {
        let valid = std::fs::read(&valid_path).unwrap();
        let path = dir.path("mutated.img");
        for m in mutations(&valid, 60, 60, 7) {
            std::fs::write(&path, &m).unwrap();
            if let Err(e) = load_rgb(&path) {
                assert!(e.to_string().contains("mutated.img"), "{e}");
            }
            cases += 1;
        }
    }
    assert!(cases > 200);
}
