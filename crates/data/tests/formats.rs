//! Each format, written the way the format itself is written, read back.

mod common;

use std::path::Path;

use common::{cifar_records, gzip, idx_bytes, pixel, TempDir};
use stiffness_checkpoint::npy::{write_npy, write_npy_f32, NpyArray, NpyData};
use stiffness_data::{resolve, Dataset, Format, ImageSource, Resolved, Split, Transform};

fn open(path: &Path) -> Dataset {
    Dataset::open(path, Format::Auto, Transform::default()).unwrap_or_else(|e| panic!("{e}"))
}

/// Check that image `n` of `data` holds the CHW pixels `pixel(n, k)`.
fn assert_pattern(data: &Dataset, i: usize, n: usize) {
    let s = data.get(i).unwrap();
    for (k, v) in s.image.iter().enumerate() {
        assert_eq!(*v, f32::from(pixel(n, k)) / 255.0, "image {i} value {k}");
    }
}

#[test]
fn cifar10_bin_folder_both_splits_and_names() {
    let dir = TempDir::new("c10");
    dir.write("data_batch_1.bin", &cifar_records(&[&[1], &[2]]));
    dir.write("data_batch_2.bin", &cifar_records(&[&[7]]));
    dir.write("data_batch_10.bin", &cifar_records(&[&[8]]));
    dir.write("test_batch.bin", &cifar_records(&[&[9], &[0], &[4]]));
    dir.write("batches.meta.txt", b"a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n\n");
    let test = open(&dir.0);
    assert_eq!(test.len(), 3);
    assert_eq!(test.labels(), vec![9, 0, 4]);
    assert_eq!(test.class_names()[9], "j");
    assert_eq!(test.get(1).unwrap().shape, [3, 32, 32]);
    assert_pattern(&test, 2, 2);
    assert!(test.describe(2).ends_with("test_batch.bin #2"));
    let train =
        Dataset::open_split(&dir.0, Format::CifarBin, Split::Train, Transform::default()).unwrap();
    assert_eq!(
        train.labels(),
        vec![1, 2, 7, 8],
        "numeric batch order 1, 2, 10"
    );
    assert_pattern(&train, 2, 0);
    assert!(train.describe(3).ends_with("data_batch_10.bin #0"));
}

#[test]
fn cifar100_bin_uses_fine_labels() {
    let dir = TempDir::new("c100");
    let test = dir.write("test.bin", &cifar_records(&[&[3, 99], &[19, 42]]));
    let names: String = (0..100).map(|i| format!("fine{i}\n")).collect();
    dir.write("fine_label_names.txt", names.as_bytes());
    let data = open(&test);
    assert_eq!(data.labels(), vec![99, 42]);
    assert_eq!(data.class_names().len(), 100);
    assert_eq!(data.class_names()[42], "fine42");
    assert_pattern(&data, 1, 1);
    assert_eq!(
        open(&dir.0).labels(),
        vec![99, 42],
        "folder, test split -> test.bin"
    );
}

#[test]
fn cifar_bin_label_out_of_range_is_an_error() {
    let dir = TempDir::new("c10bad");
    let f = dir.write("test_batch.bin", &cifar_records(&[&[10]]));
    let err = Dataset::open(&f, Format::Auto, Transform::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("test_batch.bin") && err.contains("label 10"),
        "{err}"
    );
}

fn idx_pair(dir: &TempDir, prefix: &str, gz: bool) {
    let images: Vec<u8> = (0..3 * 4 * 5).map(|k| (k * 5 % 256) as u8).collect();
    let (img, lab) = (idx_bytes(&[3, 4, 5], &images), idx_bytes(&[3], &[5, 0, 9]));
    let (img, lab, ext) = if gz {
        (gzip(&img), gzip(&lab), ".gz")
    } else {
        (img, lab, "")
    };
    dir.write(&format!("{prefix}-images-idx3-ubyte{ext}"), &img);
    dir.write(&format!("{prefix}-labels-idx1-ubyte{ext}"), &lab);
}

fn check_idx(data: &Dataset) {
    assert_eq!(data.labels(), vec![5, 0, 9]);
    let s = data.get(1).unwrap();
    assert_eq!(s.shape, [1, 4, 5]);
    let want: Vec<f32> = (20..40).map(|k| (k * 5 % 256) as f32 / 255.0).collect();
    assert_eq!(s.image, want);
}

#[test]
fn idx_plain_and_gzipped() {
    for gz in [false, true] {
        let dir = TempDir::new("idx");
        idx_pair(&dir, "t10k", gz);
        idx_pair(&dir, "train", gz);
        let data = open(&dir.0);
        check_idx(&data);
        assert_eq!(
            data.class_names(),
            ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
        );
        let ext = if gz { ".gz" } else { "" };
        check_idx(&open(&dir.0.join(format!("train-images-idx3-ubyte{ext}"))));
        let explicit = format!(
            "{}:{}",
            dir.0.join(format!("t10k-images-idx3-ubyte{ext}")).display(),
            dir.0
                .join(format!("train-labels-idx1-ubyte{ext}"))
                .display()
        );
        check_idx(&open(Path::new(&explicit)));
    }
}

#[test]
fn fashion_mnist_names_from_path() {
    let dir = TempDir::new("fashion-mnist");
    idx_pair(&dir, "t10k", true);
    let data = open(&dir.0);
    assert_eq!(data.class_names()[0], "T-shirt/top");
    assert_eq!(data.class_names()[9], "Ankle boot");
}

#[test]
fn npy_nchw_u8_and_nhwc_f32() {
    let dir = TempDir::new("npy");
    let (n, c, h, w) = (2, 3, 4, 5);
    let chw: Vec<u8> = (0..n * c * h * w).map(|k| (k % 256) as u8).collect();
    let u8_array = NpyArray {
        shape: vec![n, c, h, w],
        data: NpyData::U8(chw.clone()),
    };
    write_npy(&dir.path("test_images.npy"), &u8_array).unwrap();
    let labels = NpyArray {
        shape: vec![n],
        data: NpyData::I64(vec![1, 3]),
    };
    write_npy(&dir.path("test_labels.npy"), &labels).unwrap();
    // The same images in NHWC order, as floats.
    let mut hwc = vec![0.0f32; chw.len()];
    for (k, v) in chw.iter().enumerate() {
        let (img, rem) = (k / (c * h * w), k % (c * h * w));
        let (ch, pos) = (rem / (h * w), rem % (h * w));
        hwc[img * c * h * w + pos * c + ch] = f32::from(*v) / 255.0;
    }
    write_npy_f32(&dir.path("x_nhwc.npy"), &[n, h, w, c], &hwc).unwrap();
    write_npy(&dir.path("y_nhwc.npy"), &labels).unwrap();
    let a = open(&dir.0);
    let b = open(&dir.0.join("x_nhwc.npy"));
    for data in [&a, &b] {
        assert_eq!(data.labels(), vec![1, 3]);
        assert_eq!(data.class_names().len(), 4);
        let s = data.get(1).unwrap();
        assert_eq!(s.shape, [3, 4, 5]);
        let want: Vec<f32> = chw[60..].iter().map(|&v| f32::from(v) / 255.0).collect();
        assert_eq!(s.image, want);
    }
}

#[test]
fn npy_ambiguous_layout_is_an_error() {
    let dir = TempDir::new("npyamb");
    write_npy_f32(&dir.path("images.npy"), &[1, 3, 2, 3], &[0.5; 18]).unwrap();
    write_npy(
        &dir.path("labels.npy"),
        &NpyArray {
            shape: vec![1],
            data: NpyData::I32(vec![0]),
        },
    )
    .unwrap();
    let err = Dataset::open(&dir.0, Format::Npy, Transform::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ambiguous") && err.contains("images.npy"),
        "{err}"
    );
}

/// Writes `root/<class>/<file>` PNGs; returns the expected RGB bytes per file.
fn write_folder(dir: &TempDir) -> Vec<Vec<u8>> {
    let rgb = image::RgbImage::from_fn(3, 2, |x, y| {
        image::Rgb([(10 * x + y) as u8, 200, (x * y) as u8])
    });
    rgb.save(dir.path("root/zebra/b.png")).unwrap();
    let grey = image::GrayImage::from_fn(3, 2, |x, y| image::Luma([(40 * x + 90 * y) as u8]));
    grey.save(dir.path("root/ant/A.PNG")).unwrap();
    let rgba = image::RgbaImage::from_fn(3, 2, |x, _| image::Rgba([x as u8, 1, 2, 0]));
    rgba.save(dir.path("root/ant/sub/c.png")).unwrap();
    dir.write("root/ant/notes.txt", b"not an image");
    let chw = |f: &dyn Fn(u32, u32, usize) -> u8| {
        (0..3)
            .flat_map(|c| (0..2).flat_map(move |y| (0..3).map(move |x| (c, y, x))))
            .map(|(c, y, x)| f(x, y, c))
            .collect::<Vec<u8>>()
    };
    vec![
        chw(&|x, y, _| (40 * x + 90 * y) as u8),
        chw(&|x, _, c| [x as u8, 1, 2][c]),
        chw(&|x, y, c| [(10 * x + y) as u8, 200, (x * y) as u8][c]),
    ]
}

#[test]
fn image_folder_png_exact_pixels() {
    let dir = TempDir::new("folder");
    let want = write_folder(&dir);
    let data = open(&dir.0.join("root"));
    assert_eq!(data.class_names(), ["ant", "zebra"]);
    assert_eq!(data.labels(), vec![0, 0, 1]);
    assert!(data.describe(1).ends_with("sub/c.png"));
    for (i, bytes) in want.iter().enumerate() {
        let s = data.get(i).unwrap();
        assert_eq!(s.shape, [3, 2, 3]);
        let expect: Vec<f32> = bytes.iter().map(|&b| f32::from(b) / 255.0).collect();
        assert_eq!(s.image, expect, "image {i}");
    }
}

#[test]
fn image_folder_split_folders() {
    let dir = TempDir::new("splits");
    image::GrayImage::new(2, 2)
        .save(dir.path("train/cat/1.png"))
        .unwrap();
    image::GrayImage::new(2, 2)
        .save(dir.path("test/cat/1.png"))
        .unwrap();
    image::GrayImage::new(2, 2)
        .save(dir.path("test/dog/1.png"))
        .unwrap();
    assert_eq!(
        resolve(&dir.0, Format::Auto, Split::Test).unwrap(),
        Resolved::ImageFolder(dir.0.join("test"))
    );
    let train =
        Dataset::open_split(&dir.0, Format::Auto, Split::Train, Transform::default()).unwrap();
    assert_eq!(train.class_names(), ["cat"]);
}

#[test]
fn image_folder_empty_class_is_an_error() {
    let dir = TempDir::new("emptyclass");
    image::GrayImage::new(2, 2)
        .save(dir.path("root/a/1.png"))
        .unwrap();
    std::fs::create_dir_all(dir.0.join("root/b")).unwrap();
    let err = Dataset::open(
        &dir.0.join("root"),
        Format::ImageFolder,
        Transform::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("root/b") && err.contains("no .jpg"), "{err}");
}

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Copies fixtures into a CIFAR-style folder under their real names.
fn cifar_py_dir(files: &[(&str, &str)]) -> TempDir {
    let dir = TempDir::new("py");
    for (from, to) in files {
        dir.write(to, &std::fs::read(fixture(from)).unwrap());
    }
    dir
}

#[test]
fn cifar10_python_batch() {
    let dir = cifar_py_dir(&[
        ("cifar10_test_batch", "test_batch"),
        ("cifar10_batches.meta", "batches.meta"),
    ]);
    let data = open(&dir.0);
    assert_eq!(data.labels(), vec![3, 9]);
    assert_eq!(data.class_names()[9], "truck");
    assert_pattern(&data, 1, 1);
    let single = open(&fixture("cifar10_test_batch"));
    assert_eq!(
        single.class_names()[0],
        "airplane",
        "default CIFAR-10 names without meta"
    );
}

#[test]
fn cifar100_python_batch_uses_fine_labels() {
    let dir = cifar_py_dir(&[("cifar100_train", "train"), ("cifar100_meta", "meta")]);
    let data =
        Dataset::open_split(&dir.0, Format::Auto, Split::Train, Transform::default()).unwrap();
    assert_eq!(data.labels(), vec![99, 4]);
    assert_eq!(data.class_names().len(), 100);
    assert_eq!(data.class_names()[99], "fine99");
    assert_pattern(&data, 1, 6);
}

#[test]
fn sources_are_send_and_sync_and_load_in_parallel() {
    fn assert_send_sync<T: Send + Sync + ?Sized>() {}
    assert_send_sync::<dyn ImageSource>();
    assert_send_sync::<Dataset>();
    let dir = TempDir::new("par");
    let f = dir.write("test_batch.bin", &cifar_records(&[&[1], &[2], &[3], &[4]]));
    let data = open(&f);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let d = &data;
                s.spawn(move || d.get(i).unwrap().label)
            })
            .collect();
        let labels: Vec<usize> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(labels, vec![1, 2, 3, 4]);
    });
}

#[test]
fn unknown_paths_and_options_give_clear_errors() {
    let err = Dataset::open(
        Path::new("/nonexistent/x"),
        Format::Auto,
        Transform::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("/nonexistent/x") && err.contains("no such"),
        "{err}"
    );
    let dir = TempDir::new("unknown");
    dir.write("readme.txt", b"hello");
    let err = Dataset::open(&dir.0, Format::Auto, Transform::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("found no known data"), "{err}");
    let err = Dataset::open(
        &dir.0.join("readme.txt"),
        Format::Auto,
        Transform::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("--format"), "{err}");
    assert!("cifar-bin".parse::<Format>().is_ok() && "xyz".parse::<Format>().is_err());
    assert_eq!("TRAIN".parse::<Split>().unwrap(), Split::Train);
}
