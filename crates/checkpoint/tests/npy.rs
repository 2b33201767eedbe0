//! `.npy` reading and writing.
mod common;

use stiffness_checkpoint::npy::{
    parse_npy, read_npy, write_npy, write_npy_c128, write_npy_f32, write_npy_f64, NpyArray, NpyData,
};

#[test]
fn round_trips_every_writer_dtype() {
    let dir = common::temp_dir("npy-roundtrip");
    let f32s: Vec<f32> = (0..24).map(|i| i as f32 * 0.5 - 3.0).collect();
    let f64s: Vec<f64> = (0..6).map(|i| (i as f64).sqrt()).collect();
    let c128: Vec<[f64; 2]> = (0..5).map(|i| [i as f64, -(i as f64) / 3.0]).collect();

    let p = dir.join("a.npy");
    write_npy_f32(&p, &[2, 3, 4], &f32s).unwrap();
    let a = read_npy(&p).unwrap();
    assert_eq!(a.shape, vec![2, 3, 4]);
    assert_eq!(a.data, NpyData::F32(f32s));

    write_npy_f64(&p, &[6], &f64s).unwrap();
    assert_eq!(read_npy(&p).unwrap().data, NpyData::F64(f64s));

    write_npy_c128(&p, &[5], &c128).unwrap();
    assert_eq!(read_npy(&p).unwrap().into_c128().unwrap(), c128);

    write_npy_f64(&p, &[], &[7.5]).unwrap();
    let scalar = read_npy(&p).unwrap();
    assert!(scalar.shape.is_empty());
    assert_eq!(scalar.into_f64().unwrap(), vec![7.5]);

    let others = [
        NpyData::U8(vec![0, 255, 7]),
        NpyData::I64(vec![-1, i64::MAX, 3]),
        NpyData::I32(vec![-5, 6, i32::MIN]),
        NpyData::F16(vec![half::f16::from_f32(1.5); 3]),
    ];
    for data in others {
        let array = NpyArray {
            shape: vec![3],
            data,
        };
        write_npy(&p, &array).unwrap();
        assert_eq!(read_npy(&p).unwrap(), array);
    }
    let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temporary files are left behind");
}

#[test]
fn writer_rejects_shape_mismatch() {
    let dir = common::temp_dir("npy-mismatch");
    let err = write_npy_f32(&dir.join("x.npy"), &[2, 2], &[1.0; 3]).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("x.npy") && msg.contains("4 elements"), "{msg}");
}

#[test]
fn conversions() {
    let ints = NpyData::I32(vec![1, -2]);
    assert_eq!(ints.clone().into_f32().unwrap(), vec![1.0, -2.0]);
    assert_eq!(ints.into_i64().unwrap(), vec![1, -2]);
    assert!(NpyData::F32(vec![1.0]).into_i64().is_err());
    let err = NpyData::C128(vec![[1.0, 2.0]]).into_f64().unwrap_err();
    assert!(err.to_string().contains("complex"), "{err}");
}

/// A hand-made `.npy` file with the given header dict and data.
fn npy_with_header(dict: &str, data: &[u8]) -> Vec<u8> {
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((dict.len() as u16).to_le_bytes());
    out.extend(dict.as_bytes());
    out.extend(data);
    out
}

#[test]
fn rejects_unsupported_layouts_clearly() {
    let cases = [
        (
            "{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }",
            "big-endian",
        ),
        (
            "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }",
            "Python objects",
        ),
        (
            "{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }",
            "Fortran",
        ),
        (
            "{'descr': '<u2', 'fortran_order': False, 'shape': (1,), }",
            "unsupported dtype",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }",
            "truncated",
        ),
        ("{'descr': '<f4', 'shape': (1,), }", "lacks"),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999, 99999999999), }",
            "too many",
        ),
    ];
    for (dict, needle) in cases {
        let err = parse_npy(&npy_with_header(dict, &[0; 4])).unwrap_err();
        assert!(err.to_string().contains(needle), "{dict}: {err}");
    }
}

#[test]
fn version_2_and_3_headers() {
    for version in [2u8, 3] {
        let dict = "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }";
        let mut bytes = vec![0x93, b'N', b'U', b'M', b'P', b'Y', version, 0];
        bytes.extend((dict.len() as u32).to_le_bytes());
        bytes.extend(dict.as_bytes());
        bytes.extend([1, 0, 0, 0, 2, 0, 0, 0]);
        assert_eq!(parse_npy(&bytes).unwrap().data, NpyData::I32(vec![1, 2]));
    }
}

#[test]
fn reads_numpy_written_golden_files() {
    let Some(shared) = stiffness_testdata::shared("golden") else {
        return;
    };
    let golden = shared.join("golden/resnet20");
    let input = read_npy(&golden.join("input.npy")).unwrap();
    assert_eq!(input.shape, vec![1, 3, 32, 32]);
    assert!(matches!(input.data, NpyData::F32(ref v) if v.len() == 3072));

    let p = read_npy(&golden.join("blocks/layer1.0.p.npy")).unwrap();
    assert_eq!(p.shape, vec![1, 16, 32, 32]);
    assert!(matches!(p.data, NpyData::F64(_)));

    let eig = read_npy(&golden.join("blocks/layer3.2.eigvals.npy")).unwrap();
    assert_eq!(eig.shape, vec![4096]);
    let values = eig.into_c128().unwrap();
    // Sorted by real part, ascending.
    assert!(values.windows(2).all(|w| w[0][0] <= w[1][0]));

    // Re-writing what was read gives back numpy's bytes exactly.
    let original = std::fs::read(golden.join("input.npy")).unwrap();
    let dir = common::temp_dir("npy-golden");
    let copy = dir.join("input.npy");
    let input = read_npy(&golden.join("input.npy")).unwrap();
    write_npy(&copy, &input).unwrap();
    assert_eq!(std::fs::read(&copy).unwrap(), original);
}
