//! Tiny-ImageNet's native layout on a small synthetic tree, and the
//! `--classes` selection (also for image folders and CIFAR batches).

mod common;

use std::path::{Path, PathBuf};

use common::{cifar_records, TempDir};
use stiffness_data::{
    load_rgb, resolve, Classes, DataOptions, Dataset, Format, ImageSource, Resolved, Split,
    TinyImagenet, Transform, VAL_ANNOTATIONS,
};

/// Class order of the synthetic `wnids.txt` (deliberately not sorted).
const WNIDS: [&str; 3] = ["n02124075", "n01443537", "n04067472"];

/// Write a uniform 8x8 RGB JPEG of `rgb` to `dir/rel`.
fn jpeg(dir: &TempDir, rel: &str, rgb: [u8; 3]) {
    image::RgbImage::from_pixel(8, 8, image::Rgb(rgb))
        .save_with_format(dir.path(rel), image::ImageFormat::Jpeg)
        .unwrap();
}

/// Write a uniform 8x8 greyscale JPEG.
fn grey_jpeg(dir: &TempDir, rel: &str, v: u8) {
    image::GrayImage::from_pixel(8, 8, image::Luma([v]))
        .save_with_format(dir.path(rel), image::ImageFormat::Jpeg)
        .unwrap();
}

/// A Tiny-ImageNet tree: 3 classes (the last without a words.txt entry),
/// 4 training and 4 validation images (one greyscale in each split), one
/// unlabelled test image. Returns the root.
fn tree(dir: &TempDir) -> PathBuf {
    dir.write("tin/wnids.txt", b"n02124075\nn01443537\r\n\nn04067472");
    dir.write(
        "tin/words.txt",
        b"n00001740\tentity\nnot a words line\nn01443537\tgoldfish, Carassius auratus\nn02124075\tEgyptian cat\n",
    );
    jpeg(
        dir,
        "tin/train/n02124075/images/n02124075_1.JPEG",
        [200, 10, 10],
    );
    jpeg(
        dir,
        "tin/train/n02124075/images/n02124075_0.JPEG",
        [10, 200, 10],
    );
    dir.write(
        "tin/train/n02124075/n02124075_boxes.txt",
        b"n02124075_0.JPEG\t0\t0\t8\t8\n",
    );
    grey_jpeg(dir, "tin/train/n01443537/images/n01443537_0.JPEG", 90);
    jpeg(
        dir,
        "tin/train/n04067472/images/n04067472_0.JPEG",
        [10, 10, 200],
    );
    dir.write(
        "tin/val/val_annotations.txt",
        b"val_0.JPEG\tn01443537\t0\t1\t2\t3\nval_1.JPEG\tn02124075\t0\t1\t2\t3\nval_2.JPEG\tn04067472\t0\t1\t2\t3\nval_3.JPEG\tn02124075\t0\t1\t2\t3",
    );
    jpeg(dir, "tin/val/images/val_0.JPEG", [250, 250, 0]);
    jpeg(dir, "tin/val/images/val_1.JPEG", [0, 250, 250]);
    jpeg(dir, "tin/val/images/val_2.JPEG", [250, 0, 250]);
    grey_jpeg(dir, "tin/val/images/val_3.JPEG", 30);
    jpeg(dir, "tin/test/images/test_0.JPEG", [1, 2, 3]);
    dir.0.join("tin")
}

fn open(root: &Path, split: Split, classes: &Classes) -> TinyImagenet {
    TinyImagenet::open(root, split, classes).unwrap_or_else(|e| panic!("{e}"))
}

fn names(source: &dyn ImageSource) -> Vec<String> {
    (0..source.len())
        .map(|i| {
            let d = source.describe(i);
            Path::new(&d)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

fn labels(source: &dyn ImageSource) -> Vec<usize> {
    (0..source.len()).map(|i| source.label(i)).collect()
}

/// Mean of channel `c` of image `i`.
fn channel_mean(source: &dyn ImageSource, i: usize, c: usize) -> f32 {
    let img = source.load(i).unwrap();
    let plane = img.height * img.width;
    img.pixels[c * plane..(c + 1) * plane].iter().sum::<f32>() / plane as f32
}

/// The error of `result`, as text, after checking it names `path`.
fn error_naming<T: std::fmt::Debug>(result: stiffness_data::Result<T>, path: &Path) -> String {
    let err = result.unwrap_err().to_string();
    assert!(err.contains(&path.display().to_string()), "{err}");
    err
}

#[test]
fn class_order_and_names_from_wnids_and_words() {
    let dir = TempDir::new("tin-names");
    let root = tree(&dir);
    let train = open(&root, Split::Train, &Classes::All);
    assert_eq!(train.wnids(), WNIDS);
    assert_eq!(
        train.class_names(),
        ["Egyptian cat", "goldfish", "n04067472"]
    );
    let test = open(&root, Split::Test, &Classes::All);
    assert_eq!(test.class_names(), train.class_names());
}

#[test]
fn duplicate_first_names_get_their_wnid() {
    let dir = TempDir::new("tin-dupnames");
    let root = tree(&dir);
    dir.write(
        "tin/words.txt",
        b"n01443537\tcrane\nn02124075\tcrane, bird\nn04067472\treel\n",
    );
    let data = open(&root, Split::Train, &Classes::All);
    assert_eq!(
        data.class_names(),
        ["crane (n02124075)", "crane (n01443537)", "reel"]
    );
}

#[test]
fn missing_words_file_names_classes_by_wnid() {
    let dir = TempDir::new("tin-nowords");
    let root = tree(&dir);
    std::fs::remove_file(root.join("words.txt")).unwrap();
    assert_eq!(open(&root, Split::Test, &Classes::All).class_names(), WNIDS);
}

#[test]
fn train_split_labels_files_and_pixels() {
    let dir = TempDir::new("tin-train");
    let root = tree(&dir);
    let data = open(&root, Split::Train, &Classes::All);
    assert_eq!(
        names(&*data),
        [
            "n02124075_0.JPEG",
            "n02124075_1.JPEG",
            "n01443537_0.JPEG",
            "n04067472_0.JPEG"
        ]
    );
    assert_eq!(labels(&*data), [0, 0, 1, 2]);
    // Image 0 is the green one; JPEG of a uniform colour is nearly exact.
    assert!((channel_mean(&*data, 0, 1) - 200.0 / 255.0).abs() < 0.02);
    assert!((channel_mean(&*data, 0, 0) - 10.0 / 255.0).abs() < 0.02);
    // Decoding is the image folder's: load_rgb of the same file.
    for i in 0..data.len() {
        let img = data.load(i).unwrap();
        assert_eq!(img.shape(), [3, 8, 8]);
        assert_eq!(img, load_rgb(&data.files()[i]).unwrap());
    }
}

#[test]
fn greyscale_jpeg_gives_three_equal_channels() {
    let dir = TempDir::new("tin-grey");
    let root = tree(&dir);
    let train = open(&root, Split::Train, &Classes::All);
    let test = open(&root, Split::Test, &Classes::All);
    for (data, i, v) in [(&train, 2, 90u8), (&test, 3, 30)] {
        let img = data.load(i).unwrap();
        assert_eq!(img.channels, 3);
        let plane = img.height * img.width;
        assert_eq!(img.pixels[..plane], img.pixels[plane..2 * plane]);
        assert_eq!(img.pixels[..plane], img.pixels[2 * plane..]);
        assert!((channel_mean(&**data, i, 0) - f32::from(v) / 255.0).abs() < 0.02);
    }
}

#[test]
fn test_split_is_the_labelled_validation_set() {
    let dir = TempDir::new("tin-val");
    let root = tree(&dir);
    let data = open(&root, Split::Test, &Classes::All);
    // Annotation order; labels from the annotations' wnids.
    assert_eq!(
        names(&*data),
        ["val_0.JPEG", "val_1.JPEG", "val_2.JPEG", "val_3.JPEG"]
    );
    assert_eq!(labels(&*data), [1, 0, 2, 0]);
    assert!(data.describe(0).contains("val/images"));
    assert!((channel_mean(&*data, 2, 1)).abs() < 0.02);
    assert!((channel_mean(&*data, 2, 2) - 250.0 / 255.0).abs() < 0.02);
}

#[test]
fn auto_detection_picks_tiny_imagenet_not_image_folder() {
    let dir = TempDir::new("tin-auto");
    let root = tree(&dir);
    for split in [Split::Train, Split::Test] {
        assert_eq!(
            resolve(&root, Format::Auto, split).unwrap(),
            Resolved::TinyImagenet {
                root: root.clone(),
                split
            }
        );
    }
    let data = Dataset::open(&root, Format::Auto, Transform::default()).unwrap();
    assert_eq!(data.len(), 4);
    assert_eq!(data.labels(), [1, 0, 2, 0]);
    assert_eq!(data.get(3).unwrap().shape, [3, 8, 8]);
    // Validation annotations alone are enough to recognise the layout.
    std::fs::remove_dir_all(root.join("train")).unwrap();
    assert!(matches!(
        resolve(&root, Format::Auto, Split::Test).unwrap(),
        Resolved::TinyImagenet { .. }
    ));
    // An explicit format, by any of its names.
    for name in ["tiny-imagenet", "TinyImageNet", "tiny_imagenet"] {
        assert_eq!(name.parse::<Format>().unwrap(), Format::TinyImagenet);
    }
    assert_eq!(Format::TinyImagenet.to_string(), "tiny-imagenet");
    assert!(Format::NAMES.contains(&"tiny-imagenet"));
    let err = Dataset::open_split(
        &root,
        Format::TinyImagenet,
        Split::Train,
        Transform::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("train"), "{err}");
}

#[test]
fn first_n_classes_drop_the_others_everywhere() {
    let dir = TempDir::new("tin-first");
    let root = tree(&dir);
    // The left-out class's validation image may be missing: not checked.
    std::fs::remove_file(root.join("val/images/val_2.JPEG")).unwrap();
    std::fs::remove_dir_all(root.join("train/n04067472")).unwrap();
    let train = open(&root, Split::Train, &Classes::First(2));
    assert_eq!(train.class_names(), ["Egyptian cat", "goldfish"]);
    assert_eq!(labels(&*train), [0, 0, 1]);
    let test = open(&root, Split::Test, &Classes::First(2));
    assert_eq!(names(&*test), ["val_0.JPEG", "val_1.JPEG", "val_3.JPEG"]);
    assert_eq!(labels(&*test), [1, 0, 0]);
    // Through DataOptions, as the command line passes it.
    let options = DataOptions {
        classes: "2".into(),
        ..DataOptions::default()
    };
    let data = options.open(&root).unwrap();
    assert_eq!(data.labels(), [1, 0, 0]);
    let err = error_naming(
        TinyImagenet::open(&root, Split::Test, &Classes::First(4)),
        &root.join("wnids.txt"),
    );
    assert!(err.contains("only 3"), "{err}");
}

#[test]
fn classes_file_selects_and_orders_labels() {
    let dir = TempDir::new("tin-file");
    let root = tree(&dir);
    // By wnid and by class name; the file's order is the label order.
    let file = dir.write("pick.txt", b"n04067472\n\ngoldfish\tignored text\n");
    let classes: Classes = file.to_str().unwrap().parse().unwrap();
    let test = open(&root, Split::Test, &classes);
    assert_eq!(test.wnids(), ["n04067472", "n01443537"]);
    assert_eq!(test.class_names(), ["n04067472", "goldfish"]);
    assert_eq!(names(&*test), ["val_0.JPEG", "val_2.JPEG"]);
    assert_eq!(labels(&*test), [1, 0]);
    let train = open(&root, Split::Train, &classes);
    // Training images go class by class, in label order.
    assert_eq!(labels(&*train), [0, 1]);
    assert_eq!(names(&*train), ["n04067472_0.JPEG", "n01443537_0.JPEG"]);
}

#[test]
fn classes_errors_name_the_file() {
    let dir = TempDir::new("tin-classerr");
    let root = tree(&dir);
    let unknown = dir.write("unknown.txt", b"n01443537\nn09999999\n");
    let classes: Classes = unknown.to_str().unwrap().parse().unwrap();
    let err = error_naming(TinyImagenet::open(&root, Split::Test, &classes), &unknown);
    assert!(err.contains("line 2") && err.contains("n09999999"), "{err}");
    let twice = dir.write("twice.txt", b"goldfish\nn01443537\n");
    let classes: Classes = twice.to_str().unwrap().parse().unwrap();
    let err = error_naming(TinyImagenet::open(&root, Split::Train, &classes), &twice);
    assert!(err.contains("line 2") && err.contains("line 1"), "{err}");
    let empty = dir.write("empty.txt", b"\n\n");
    let err = error_naming(empty.to_str().unwrap().parse::<Classes>(), &empty);
    assert!(err.contains("no class"), "{err}");
    for bad in ["0", "no-such-file.txt", ""] {
        assert!(bad.parse::<Classes>().is_err(), "{bad}");
    }
    assert_eq!(" ALL ".parse::<Classes>().unwrap(), Classes::All);
    assert_eq!("200".parse::<Classes>().unwrap(), Classes::First(200));
}

#[test]
fn missing_wnids_is_an_error() {
    let dir = TempDir::new("tin-nownids");
    let root = tree(&dir);
    std::fs::remove_file(root.join("wnids.txt")).unwrap();
    let err = error_naming(
        TinyImagenet::open(&root, Split::Test, &Classes::All),
        &root.join("wnids.txt"),
    );
    assert!(err.contains("missing"), "{err}");
    // An explicit format reports the missing file too.
    let err = error_naming(
        Dataset::open(&root, Format::TinyImagenet, Transform::default()),
        &root.join("wnids.txt"),
    );
    assert!(err.contains("missing"), "{err}");
}

#[test]
fn duplicate_or_empty_wnids_are_errors() {
    let dir = TempDir::new("tin-dupwnid");
    let root = tree(&dir);
    let wnids = dir.write("tin/wnids.txt", b"n02124075\nn01443537\nn02124075\n");
    let err = error_naming(
        TinyImagenet::open(&root, Split::Train, &Classes::All),
        &wnids,
    );
    assert!(err.contains("line 3") && err.contains("line 1"), "{err}");
    dir.write("tin/wnids.txt", b"\n \n");
    let err = error_naming(
        TinyImagenet::open(&root, Split::Train, &Classes::All),
        &wnids,
    );
    assert!(err.contains("no class"), "{err}");
    dir.write("tin/wnids.txt", b"../etc\n");
    error_naming(
        TinyImagenet::open(&root, Split::Train, &Classes::All),
        &wnids,
    );
}

#[test]
fn annotation_errors_name_file_and_line() {
    let dir = TempDir::new("tin-annot");
    let root = tree(&dir);
    let ann = root.join(VAL_ANNOTATIONS);
    let cases: [(&[u8], &str); 4] = [
        (
            b"val_0.JPEG\tn01443537\t0\t1\t2\t3\nval_1.JPEG\tn02124075\t0\t1\t2\n",
            "line 2 has 5 fields",
        ),
        (
            b"val_0.JPEG\tn01443537\t0\t1\t2\t3\nval_1.JPEG\tn09999999\t0\t1\t2\t3\n",
            "line 2: wnid n09999999",
        ),
        (
            b"val_0.JPEG\tn01443537\t0\t1\t2\t3\nval_0.JPEG\tn02124075\t0\t1\t2\t3\n",
            "already labelled on line 1",
        ),
        (b"../val_0.JPEG\tn01443537\t0\t1\t2\t3\n", "line 1"),
    ];
    for (text, want) in cases {
        std::fs::write(&ann, text).unwrap();
        let err = error_naming(TinyImagenet::open(&root, Split::Test, &Classes::All), &ann);
        assert!(err.contains(want), "{err}");
    }
    std::fs::remove_file(&ann).unwrap();
    let err = error_naming(TinyImagenet::open(&root, Split::Test, &Classes::All), &ann);
    assert!(err.contains("missing"), "{err}");
}

#[test]
fn missing_validation_image_is_an_error() {
    let dir = TempDir::new("tin-valmissing");
    let root = tree(&dir);
    let image = root.join("val/images/val_1.JPEG");
    std::fs::remove_file(&image).unwrap();
    let err = error_naming(
        TinyImagenet::open(&root, Split::Test, &Classes::All),
        &image,
    );
    assert!(
        err.contains("line 2") && err.contains("val_annotations.txt"),
        "{err}"
    );
}

#[test]
fn class_without_validation_image_is_an_error() {
    let dir = TempDir::new("tin-valclass");
    let root = tree(&dir);
    let ann = dir.write(
        "tin/val/val_annotations.txt",
        b"val_0.JPEG\tn01443537\t0\t1\t2\t3\nval_1.JPEG\tn02124075\t0\t1\t2\t3\n",
    );
    let err = error_naming(TinyImagenet::open(&root, Split::Test, &Classes::All), &ann);
    assert!(err.contains("n04067472"), "{err}");
    // Leaving the class out is the way round it.
    assert_eq!(open(&root, Split::Test, &Classes::First(2)).len(), 2);
}

#[test]
fn train_class_folder_errors() {
    let dir = TempDir::new("tin-trainerr");
    let root = tree(&dir);
    let class = root.join("train/n01443537");
    std::fs::remove_file(class.join("images/n01443537_0.JPEG")).unwrap();
    dir.write("tin/train/n01443537/images/readme.txt", b"no image");
    let err = error_naming(
        TinyImagenet::open(&root, Split::Train, &Classes::All),
        &class,
    );
    assert!(err.contains("no .JPEG"), "{err}");
    std::fs::remove_dir_all(&class).unwrap();
    let err = error_naming(
        TinyImagenet::open(&root, Split::Train, &Classes::All),
        &class,
    );
    assert!(err.contains("missing"), "{err}");
    std::fs::remove_dir_all(root.join("train")).unwrap();
    error_naming(
        TinyImagenet::open(&root, Split::Train, &Classes::All),
        &root.join("train"),
    );
}

#[test]
fn classes_for_image_folders() {
    let dir = TempDir::new("folder-classes");
    for (class, v) in [("ant", 10u8), ("bee", 20), ("cat", 30)] {
        image::GrayImage::from_pixel(2, 2, image::Luma([v]))
            .save(dir.path(&format!("root/{class}/1.png")))
            .unwrap();
    }
    // A left-out folder is not read, so it may be empty.
    std::fs::create_dir_all(dir.0.join("root/dog")).unwrap();
    let root = dir.0.join("root");
    let file = dir.write("pick.txt", b"cat\nant\n");
    let options = DataOptions {
        classes: file.to_str().unwrap().into(),
        ..DataOptions::default()
    };
    let data = options.open(&root).unwrap();
    assert_eq!(data.class_names(), ["cat", "ant"]);
    assert_eq!(data.labels(), [0, 1]);
    assert_eq!(data.get(0).unwrap().image[0], 30.0 / 255.0);
    assert_eq!(data.get(1).unwrap().image[0], 10.0 / 255.0);
    let first = DataOptions {
        classes: "2".into(),
        ..DataOptions::default()
    };
    assert_eq!(first.open(&root).unwrap().class_names(), ["ant", "bee"]);
    let bad = dir.write("bad.txt", b"ant\nzebra\n");
    let options = DataOptions {
        classes: bad.to_str().unwrap().into(),
        ..DataOptions::default()
    };
    let err = error_naming(options.open(&root), &bad);
    assert!(err.contains("line 2"), "{err}");
}

#[test]
fn classes_for_cifar_batches() {
    let dir = TempDir::new("cifar-classes");
    dir.write("test_batch.bin", &cifar_records(&[&[9], &[0], &[4], &[0]]));
    dir.write("batches.meta.txt", b"a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n");
    let file = dir.write("pick.txt", b"a\nj\n");
    let data = Dataset::open_classes(
        &dir.0,
        Format::Auto,
        Split::Test,
        &file.to_str().unwrap().parse().unwrap(),
        Transform::default(),
    )
    .unwrap();
    assert_eq!(data.class_names(), ["a", "j"]);
    assert_eq!(data.labels(), [1, 0, 0]);
    assert!(data.describe(2).ends_with("test_batch.bin #3"));
    let five = Dataset::open_classes(
        &dir.0,
        Format::Auto,
        Split::Test,
        &Classes::First(5),
        Transform::default(),
    )
    .unwrap();
    assert_eq!(five.labels(), [0, 4, 0]);
    assert_eq!(five.class_names().len(), 5);
}
