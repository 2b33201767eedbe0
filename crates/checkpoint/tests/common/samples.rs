//! Sample files for the tests.

use super::pickler::{checkpoint_pickle, legacy_file, zip_file, FakeStorage, FakeTensor, Pickler};

pub fn tensor(storage_type: &'static str, key: &'static str, numel: usize) -> FakeTensor {
    FakeTensor {
        storage_type,
        key,
        storage_numel: numel,
        offset: 0,
        size: vec![numel],
        stride: vec![1],
        view: None,
    }
}

pub fn strided(base: &FakeTensor, offset: usize, size: &[usize], stride: &[usize]) -> FakeTensor {
    FakeTensor {
        offset,
        size: size.to_vec(),
        stride: stride.to_vec(),
        ..base.clone()
    }
}

/// Tensors (with `module.` names) and their storages.
pub fn sample(legacy: bool) -> (Vec<(&'static str, FakeTensor)>, Vec<FakeStorage>) {
    let f32s = tensor("FloatStorage", "0", 12);
    let mut entries = vec![
        ("module.conv.weight", strided(&f32s, 0, &[2, 3], &[3, 1])),
        // The transpose of conv.weight: non-contiguous, same storage.
        ("module.conv.weight_t", strided(&f32s, 0, &[3, 2], &[1, 3])),
        // Another view into the shared storage, with an offset.
        ("module.shared.view", strided(&f32s, 6, &[2, 2], &[1, 4])),
        ("module.bn.bias", tensor("HalfStorage", "1", 3)),
        (
            "module.bn.num_batches_tracked",
            strided(&tensor("LongStorage", "2", 1), 0, &[], &[]),
        ),
        (
            "module.fc.weight",
            strided(&tensor("DoubleStorage", "3", 4), 1, &[2], &[2]),
        ),
        ("module.fc.bias", tensor("BFloat16Storage", "4", 2)),
        ("module.empty", strided(&f32s, 12, &[0, 5], &[5, 1])),
    ];
    if legacy {
        let mut view = strided(&f32s, 1, &[2], &[1]);
        view.view = Some(("view5", 4, 4));
        entries.push(("module.legacy_view", view));
    }
    let storages = vec![
        FakeStorage {
            key: "0",
            element_size: 4,
            bytes: (0..12).flat_map(|i| (i as f32).to_le_bytes()).collect(),
        },
        FakeStorage {
            key: "1",
            element_size: 2,
            bytes: [0.5f32, -2.0, 1024.0]
                .iter()
                .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                .collect(),
        },
        FakeStorage {
            key: "2",
            element_size: 8,
            bytes: 42i64.to_le_bytes().to_vec(),
        },
        FakeStorage {
            key: "3",
            element_size: 8,
            bytes: [0.25f64, 1.5, -3.0, 4.75]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        },
        FakeStorage {
            key: "4",
            element_size: 2,
            bytes: [1.0f32, -0.5]
                .iter()
                .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
                .collect(),
        },
    ];
    (entries, storages)
}

pub fn sample_legacy() -> Vec<u8> {
    let (entries, storages) = sample(true);
    legacy_file(&checkpoint_pickle(&entries, true), &storages)
}

pub fn sample_zip() -> Vec<u8> {
    let (entries, storages) = sample(false);
    zip_file(&checkpoint_pickle(&entries, false), &storages)
}

/// A CIFAR python batch as Python 2's cPickle writes it (protocol 2, `str`
/// keys and data as `BINSTRING`).
pub fn cifar_python2(labels_key: &str, n: usize) -> Vec<u8> {
    let mut p = Pickler::new();
    p.raw(b"}");
    p.put();
    p.mark().py2_str(b"data");
    p.global("numpy.core.multiarray", "_reconstruct");
    p.global("numpy", "ndarray")
        .int_tuple(&[0])
        .py2_str(b"b")
        .raw(&[0x87])
        .reduce();
    p.mark().int(1).int_tuple(&[n, 3072]);
    p.global("numpy", "dtype")
        .py2_str(b"u1")
        .raw(&[0x89, 0x88, 0x87])
        .reduce();
    p.mark()
        .int(3)
        .py2_str(b"|")
        .none()
        .none()
        .none()
        .int(-1)
        .int(-1)
        .int(0)
        .tuple();
    p.raw(b"b");
    let pixels: Vec<u8> = (0..n * 3072).map(|i| (i % 251) as u8).collect();
    p.raw(&[0x89]).py2_str(&pixels).tuple().raw(b"b");
    p.py2_str(labels_key.as_bytes()).raw(b"]").mark();
    for i in 0..n {
        p.int((i % 100) as i64);
    }
    p.raw(b"e");
    p.py2_str(b"batch_label").py2_str(b"training batch 1 of 5");
    p.raw(b"u");
    p.finish()
}
