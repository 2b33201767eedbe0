//! Bad values never become numbers: every case of the validation issue, run
//! through the command line. Each refused case exits with status 2, names
//! the problem, does not panic and leaves no output; values that overflow
//! inside the network become records with a reason and no metric.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{scratch, stderr, tool};

use resnet_stiffness::model::{random, ArchSpec};
use stiffness_checkpoint::npy::write_npy_f32;
use stiffness_checkpoint::safetensors::{save_safetensors, SaveDType};
use stiffness_checkpoint::{StateDict, Tensor};

/// A CIFAR ResNet8 (16/32/64 channels, 3 input channels, 10 classes) with
/// random weights, passed through `edit` before it is written as float32
/// safetensors.
fn resnet8(dir: &Path, name: &str, edit: impl FnOnce(&mut StateDict)) -> PathBuf {
    let spec = ArchSpec::preset("resnet8", 3, 10).unwrap();
    let mut state: StateDict = random::weights(&spec, 7)
        .into_iter()
        .map(|(n, (shape, values))| (n, Tensor::new(shape, values).unwrap()))
        .collect();
    edit(&mut state);
    let path = dir.join(name);
    save_safetensors(&path, &state, SaveDType::F32, &BTreeMap::new()).unwrap();
    path
}

fn set(state: &mut StateDict, name: &str, f: impl FnOnce(&mut Tensor)) {
    let mut t = state
        .get(name)
        .unwrap_or_else(|| panic!("no {name}"))
        .clone();
    f(&mut t);
    state.insert(name, t);
}

fn npy(dir: &Path, name: &str, shape: &[usize], f: impl Fn(usize) -> f32) -> PathBuf {
    let path = dir.join(name);
    let n: usize = shape.iter().product();
    let values: Vec<f32> = (0..n).map(f).collect();
    write_npy_f32(&path, shape, &values).unwrap();
    path
}

/// A labels .npy (int64).
fn labels(path: &Path, values: Vec<i64>) {
    let array = stiffness_checkpoint::npy::NpyArray {
        shape: vec![values.len()],
        data: stiffness_checkpoint::npy::NpyData::I64(values),
    };
    stiffness_checkpoint::npy::write_npy(path, &array).unwrap();
}

/// The command fails with exit 2, its message contains every needle, there
/// is no panic, and `out` was not created.
fn refused(args: &[&str], needles: &[&str], out: &Path) {
    let o = tool(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    for needle in needles {
        assert!(err.contains(needle), "{args:?}: no {needle:?} in: {err}");
    }
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    assert!(!out.exists(), "{args:?} left {}", out.display());
}

fn analyze<'a>(model: &'a Path, input: &'a Path, out: &'a Path) -> Vec<&'a str> {
    vec![
        "analyze",
        "--model",
        model.to_str().unwrap(),
        "--input-npy",
        input.to_str().unwrap(),
        "--blocks",
        "layer3.0",
        "--out",
        out.to_str().unwrap(),
        "--threads",
        "1",
    ]
}

#[test]
fn degenerate_input_tensors_are_refused() {
    let dir = scratch("bad-inputs");
    let model = resnet8(&dir, "resnet8.safetensors", |_| {});
    let out = dir.join("out");
    let cases: Vec<(PathBuf, Vec<&str>)> = vec![
        (
            npy(&dir, "zero-axis.npy", &[1, 3, 0, 32], |_| 0.0),
            vec!["zero-axis.npy", "zero-length axis", "[1, 3, 0, 32]"],
        ),
        (
            npy(&dir, "no-images.npy", &[0, 3, 32, 32], |_| 0.0),
            vec!["no-images.npy", "holds no images"],
        ),
        (
            npy(&dir, "all-nan.npy", &[1, 3, 32, 32], |_| f32::NAN),
            vec!["all-nan.npy image 0", "3072 of 3072 values are not finite"],
        ),
        (
            npy(&dir, "all-inf.npy", &[1, 3, 32, 32], |_| f32::INFINITY),
            vec!["all-inf.npy image 0", "3072 of 3072 values are not finite"],
        ),
        (
            npy(&dir, "one-nan.npy", &[2, 3, 32, 32], |i| {
                if i == 3072 + 77 {
                    f32::NAN
                } else {
                    0.5
                }
            }),
            vec!["one-nan.npy image 1", "1 of 3072", "flat index 77"],
        ),
    ];
    for (input, needles) in &cases {
        refused(&analyze(&model, input, &out), needles, &out);
    }
}

#[test]
fn malformed_and_non_finite_weights_are_refused() {
    let dir = scratch("bad-weights");
    let image = npy(&dir, "image.npy", &[1, 3, 32, 32], |i| {
        (i as f32 * 0.1).sin()
    });
    let out = dir.join("out");
    type Edit = Box<dyn FnOnce(&mut StateDict)>;
    let scalar = |name: &'static str| -> Edit {
        Box::new(move |s: &mut StateDict| {
            set(s, name, |t| *t = Tensor::new(vec![], vec![0.5]).unwrap())
        })
    };
    let cases: Vec<(&str, Edit, Vec<&str>)> = vec![
        (
            "scalar-fc",
            scalar("linear.weight"),
            vec!["linear.weight", "scalar"],
        ),
        (
            "scalar-conv",
            scalar("layer2.0.conv1.weight"),
            vec!["layer2.0.conv1.weight", "scalar"],
        ),
        (
            "negative-var",
            Box::new(|s| set(s, "layer1.0.bn2.running_var", |t| t.values[3] = -0.25)),
            vec![
                "layer1.0.bn2.running_var",
                "1 negative value",
                "flat index 3",
                "-0.25",
            ],
        ),
        (
            "nan-bn",
            Box::new(|s| set(s, "bn1.weight", |t| t.values.fill(f32::NAN))),
            vec!["bn1.weight", "16 non-finite value(s) of 16", "NaN"],
        ),
        (
            "inf-conv",
            Box::new(|s| set(s, "layer3.0.conv2.weight", |t| t.values[10] = f32::INFINITY)),
            vec![
                "layer3.0.conv2.weight",
                "1 non-finite",
                "flat index 10",
                "inf",
            ],
        ),
    ];
    for (name, edit, mut needles) in cases {
        let file = format!("{name}.safetensors");
        let model = resnet8(&dir, &file, edit);
        needles.push(&file);
        refused(&analyze(&model, &image, &out), &needles, &out);
        refused(
            &["inspect", "--model", model.to_str().unwrap()],
            &needles,
            &out,
        );
    }
}

#[test]
fn empty_selections_are_refused() {
    let dir = scratch("bad-empty");
    let model = resnet8(&dir, "resnet8.safetensors", |_| {});
    let out = dir.join("out");
    // An npy data set with no image (and its labels file).
    let images = npy(&dir, "images.npy", &[0, 3, 32, 32], |_| 0.0);
    labels(&dir.join("labels.npy"), vec![]);
    let m = model.to_str().unwrap();
    let o = out.to_str().unwrap();
    refused(
        &[
            "analyze",
            "--model",
            m,
            "--data",
            images.to_str().unwrap(),
            "--out",
            o,
        ],
        &["images.npy", "holds no images"],
        &out,
    );
    refused(
        &["eval", "--model", m, "--data", images.to_str().unwrap()],
        &["images.npy", "holds no images"],
        &out,
    );
    // Two labelled images, then options that select nothing.
    let two = npy(&dir, "two.npy", &[2, 3, 32, 32], |i| (i % 7) as f32 / 7.0);
    labels(&dir.join("two.labels.npy"), vec![0, 1]);
    let data = format!("{}:{}", two.display(), dir.join("two.labels.npy").display());
    for (extra, needle) in [
        (vec!["--per-class", "0"], "no samples to analyse"),
        (vec!["--samples", "0"], "no samples to analyse"),
        (vec!["--shard", "3/4"], "shard 3/4 gets no sample"),
    ] {
        let mut args = vec![
            "analyze",
            "--model",
            m,
            "--data",
            &data,
            "--out",
            o,
            "--no-eval",
        ];
        args.extend(extra);
        refused(&args, &[needle], &out);
    }
    refused(
        &["eval", "--model", m, "--data", &data, "--limit", "0"],
        &["--limit 0"],
        &out,
    );
}

#[test]
fn non_finite_images_in_a_data_set_are_refused_up_front() {
    let dir = scratch("bad-dataset");
    let model = resnet8(&dir, "resnet8.safetensors", |_| {});
    let out = dir.join("out");
    let images = npy(&dir, "images.npy", &[3, 3, 32, 32], |i| {
        if i == 2 * 3072 + 5 {
            f32::INFINITY
        } else {
            0.25
        }
    });
    labels(&dir.join("labels.npy"), vec![0, 1, 2]);
    let (m, d, o) = (
        model.to_str().unwrap(),
        images.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    for args in [
        vec!["eval", "--model", m, "--data", d],
        vec![
            "analyze",
            "--model",
            m,
            "--data",
            d,
            "--out",
            o,
            "--no-eval",
        ],
        vec![
            "train",
            "--arch",
            "resnet8",
            "--data",
            d,
            "--eval-data",
            d,
            "--out",
            o,
            "--epochs",
            "1",
        ],
    ] {
        refused(
            &args,
            &["images.npy #2", "1 of 3072 values are not finite"],
            &out,
        );
    }
    // A normalisation that overflows float32 is caught per image too.
    let clean = npy(&dir, "clean.npy", &[3, 3, 32, 32], |_| 0.75);
    let c = format!("{}:{}", clean.display(), dir.join("labels.npy").display());
    refused(
        &["eval", "--model", m, "--data", &c, "--normalize", "0:1e-45"],
        &["clean.npy #0", "not finite"],
        &out,
    );
}

#[test]
fn undecodable_image_in_a_folder_is_refused_before_any_record() {
    let dir = scratch("bad-folder");
    let model = resnet8(&dir, "resnet8.safetensors", |_| {});
    let out = dir.join("out");
    for class in ["cat", "dog"] {
        std::fs::create_dir_all(dir.join("data").join(class)).unwrap();
        let img =
            image::RgbImage::from_fn(32, 32, |x, y| image::Rgb([x as u8 * 8, y as u8 * 8, 7]));
        img.save(dir.join("data").join(class).join("a.png"))
            .unwrap();
    }
    std::fs::write(dir.join("data/dog/b.jpg"), b"\xff\xd8\xff\xe0 truncated").unwrap();
    let data = dir.join("data");
    let args = [
        "analyze",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--per-class",
        "2",
        "--no-eval",
        "--out",
        out.to_str().unwrap(),
    ];
    refused(&args, &["b.jpg", "cannot decode image"], &out);
}

#[test]
fn overflow_inside_the_network_becomes_a_record_with_a_reason() {
    let dir = scratch("bad-overflow");
    // Finite weights whose forward pass overflows float32 in stage 2.
    let model = resnet8(&dir, "huge.safetensors", |s| {
        for name in ["layer2.0.conv1.weight", "layer2.0.conv2.weight"] {
            set(s, name, |t| t.values.iter_mut().for_each(|v| *v *= 1e25));
        }
    });
    let image = npy(&dir, "image.npy", &[1, 3, 32, 32], |i| {
        (i as f32 * 0.1).sin()
    });
    let out = dir.join("out");
    let o = tool(&[
        "analyze",
        "--model",
        model.to_str().unwrap(),
        "--input-npy",
        image.to_str().unwrap(),
        "--blocks",
        "layer1.0,layer3.0",
        "--out",
        out.to_str().unwrap(),
        "--threads",
        "1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let records = stiffness_records::read_records(&out).unwrap();
    assert_eq!(records.len(), 4);
    for r in &records {
        let reason = r.failure.as_deref().unwrap_or_else(|| panic!("{r:?}"));
        assert!(reason.contains("overflowed"), "{reason}");
        assert!(r.max_re.is_none() && r.spectral_radius.is_none() && r.sigma_max.is_none());
        assert!(r.soderlind.is_none() && r.neg_share.is_none(), "{r:?}");
    }
    let csv = std::fs::read_to_string(out.join("records.csv")).unwrap();
    assert!(csv.lines().next().unwrap().ends_with(",failure"), "{csv}");
    assert!(csv.contains("the forward pass overflowed"), "{csv}");
    // The report leaves them out and says so.
    let report = dir.join("report");
    let o = tool(&[
        "report",
        "--records",
        out.to_str().unwrap(),
        "--out",
        report.to_str().unwrap(),
        "--format",
        "md",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();
    assert!(md.contains("4 records could not be computed"), "{md}");
    assert!(
        md.contains("sample 0, layer1.0: the forward pass overflowed"),
        "{md}"
    );
    // Evaluation cannot report an accuracy on such logits: exit 2.
    labels(&dir.join("image.labels.npy"), vec![0]);
    let data = format!(
        "{}:{}",
        image.display(),
        dir.join("image.labels.npy").display()
    );
    refused(
        &["eval", "--model", model.to_str().unwrap(), "--data", &data],
        &["image.npy #0", "logits are not finite"],
        &dir.join("none"),
    );
}

#[test]
fn memory_beyond_the_limit_is_refused_before_anything_is_allocated() {
    let dir = scratch("bad-memory");
    let model = resnet8(&dir, "resnet8.safetensors", |_| {});
    let image = npy(&dir, "image.npy", &[1, 3, 32, 32], |i| {
        (i as f32 * 0.1).sin()
    });
    let out = dir.join("out");
    let mut args = analyze(&model, &image, &out);
    args.extend(["--max-memory", "1M"]);
    refused(
        &args,
        &[
            "block layer3.0",
            "the matrix-free path needs up to",
            "--max-memory 1.00 MiB less the weights",
        ],
        &out,
    );
    let mut args = analyze(&model, &image, &out);
    args.extend(["--max-memory", "lots"]);
    refused(&args, &["--max-memory \"lots\""], &out);
}

/// The ImageNet-scale case: a ResNet50 at 224 x 224, stage 4, under a 12 GB
/// limit. The dense path (`--solver dense`) is refused at once with the
/// estimate (it would need more than 12 GB), instead of aborting after 45 s;
/// the default plan sends the block matrix-free, and the run completes
/// within the limit with converged records.
#[test]
fn resnet50_stage4_at_224_dense_is_refused_and_auto_runs_matrix_free() {
    let dir = scratch("bad-r50");
    let spec = ArchSpec::preset("resnet50", 3, 10).unwrap();
    let state: StateDict = random::weights(&spec, 3)
        .into_iter()
        .map(|(n, (shape, values))| (n, Tensor::new(shape, values).unwrap()))
        .collect();
    let model = dir.join("resnet50.safetensors");
    save_safetensors(&model, &state, SaveDType::F16, &BTreeMap::new()).unwrap();
    let image = npy(&dir, "image.npy", &[1, 3, 224, 224], |i| {
        (i as f32 * 0.01).sin()
    });
    let out = dir.join("out");
    let mut args = analyze(&model, &image, &out);
    args[6] = "layer4.1";
    args.extend(["--max-memory", "12G"]);
    let mut dense = args.clone();
    dense.extend(["--solver", "dense"]);
    refused(
        &dense,
        &[
            "block layer4.1",
            "input 2048x7x7",
            "--max-memory 12.00 GiB less the weights",
            "use --solver auto or krylov",
        ],
        &out,
    );
    args.extend(["--jacobian", "residual"]);
    let o = tool(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let records = stiffness_records::read_records(&out).unwrap();
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(
        (r.method, r.converged),
        (stiffness_records::Method::Krylov, Some(true))
    );
    assert!(r.max_re.is_some() && r.spectral_radius.is_some() && r.soderlind.is_some());
}
