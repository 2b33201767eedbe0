//! The restricted unpickler: real Python pickles, numpy arrays, refusals.
mod common;

use common::pickler::Pickler;
use common::samples::cifar_python2;
use stiffness_checkpoint::pickle::{unpickle, unpickle_prefix, Value};

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(path).unwrap()
}

fn s(text: &str) -> Value {
    Value::Str(text.into())
}

#[test]
fn python_pickles_of_plain_data_at_every_protocol() {
    for protocol in 0..=5 {
        let value = unpickle(&fixture(&format!("plain_p{protocol}.pkl"))).unwrap();
        let get = |key: &str| {
            value
                .get(key)
                .unwrap_or_else(|| panic!("p{protocol}: {key}"))
        };
        assert_eq!(get("int"), &Value::Int(1));
        assert_eq!(get("neg"), &Value::Int(-5));
        assert_eq!(get("big"), &Value::Int(1 << 40));
        assert_eq!(get("f"), &Value::Float(1.5));
        assert_eq!(get("s"), &s("h\u{e9}llo \u{2603}"));
        assert_eq!(
            get("b"),
            &Value::Bytes(vec![0, 255, b'\n']),
            "protocol {protocol}"
        );
        assert_eq!(
            get("l"),
            &Value::List(vec![Value::Int(1), Value::Int(2), Value::Int(3)])
        );
        assert_eq!(get("t"), &Value::Tuple(vec![Value::Int(1), s("a")]));
        assert_eq!(get("n"), &Value::None);
        assert_eq!(get("T"), &Value::Bool(true));
        assert_eq!(get("F"), &Value::Bool(false));
        let nested = get("nested");
        assert_eq!(
            nested.get("x"),
            Some(&Value::List(vec![Value::List(vec![])]))
        );
        assert_eq!(nested.get("y"), Some(&Value::Tuple(vec![])));
        let expected: Vec<i64> = (0..2000).collect();
        assert_eq!(get("long_list").to_i64_vec().unwrap(), expected);
        let one = Value::List(vec![Value::Int(1)]);
        assert_eq!(get("shared"), &Value::List(vec![one.clone(), one]));
    }
}

#[test]
fn numpy_arrays_as_pickled_by_python3() {
    for name in ["numpy_p2.pkl", "numpy_p4.pkl"] {
        let value = unpickle(&fixture(name)).unwrap();
        let Some(Value::NdArray(data)) = value.get("data") else {
            panic!("{name}: data is not an array");
        };
        assert_eq!(data.shape, [3, 4]);
        assert_eq!(data.to_u8().unwrap(), (0..12).collect::<Vec<u8>>());
        assert_eq!(
            value.get("labels").unwrap().to_i64_vec().unwrap(),
            [3, 8, 0]
        );
        let Some(Value::NdArray(floats)) = value.get("floats") else {
            panic!("floats");
        };
        assert_eq!(floats.to_npy().unwrap().into_f64().unwrap(), [2.0, 1.0]);
        // The second array reuses the memoized dtype object.
        let Some(Value::NdArray(same)) = value.get("same_dtype") else {
            panic!("same_dtype");
        };
        assert_eq!(
            (same.descr.as_str(), same.to_u8().unwrap()),
            ("|u1", vec![7])
        );
    }
}

#[test]
fn cifar_python2_batches() {
    for key in ["labels", "fine_labels"] {
        let value = unpickle(&cifar_python2(key, 5)).unwrap();
        assert!(matches!(value.as_dict(), Some(d) if matches!(d[0].0, Value::Bytes(_))));
        let Some(Value::NdArray(data)) = value.get("data") else {
            panic!("data");
        };
        assert_eq!(data.shape, [5, 3072]);
        let pixels = data.to_u8().unwrap();
        assert_eq!(
            (pixels.len(), pixels[300], pixels[5 * 3072 - 1]),
            (5 * 3072, 49, ((5 * 3072 - 1) % 251) as u8)
        );
        assert_eq!(
            value.get(key).unwrap().to_i64_vec().unwrap(),
            [0, 1, 2, 3, 4]
        );
    }
}

#[test]
fn sequences_of_pickles() {
    let mut first = Pickler::new();
    first.int(5);
    let mut second = Pickler::new();
    second.str("x");
    let mut bytes = first.finish();
    bytes.extend(second.finish());
    let (value, used) = unpickle_prefix(&bytes).unwrap();
    assert_eq!(value, Value::Int(5));
    assert_eq!(unpickle(&bytes[used..]).unwrap(), s("x"));
}

#[test]
fn refuses_code_execution() {
    let cases: [(&[u8], &str); 5] = [
        (b"cos\nsystem\n(S'echo pwned'\ntR.", "'os.system'"),
        (
            b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93\x8c\x061+1\x85R.",
            "'builtins.eval'",
        ),
        (b"\x80\x02c__builtin__\ngetattr\n.", "'__builtin__.getattr'"),
        (b"\x80\x02csubprocess\nPopen\n.", "'subprocess.Popen'"),
        (
            b"\x80\x02ctorch.nn.modules.conv\nConv2d\n.",
            "'torch.nn.modules.conv.Conv2d'",
        ),
    ];
    for (pickle, name) in cases {
        let msg = unpickle(pickle).unwrap_err().to_string();
        assert!(
            msg.contains(&format!("refusing to load global {name}: only tensors, storages, numbers, strings and containers are allowed")),
            "{msg}"
        );
    }
    // INST and OBJ name classes too; they are not supported at all.
    assert!(unpickle(b"(ios\nsystem\nS'x'\n.").is_err());
}

#[test]
fn huge_declared_lengths_are_errors() {
    let cases: [&[u8]; 7] = [
        b"\x80\x02X\xff\xff\xff\xff",
        b"\x80\x04\x8d\xff\xff\xff\xff\xff\xff\xff\x7f",
        b"\x80\x04\x8e\x00\x00\x00\x00\x00\x00\x00\x01",
        b"\x80\x02\x8b\xff\xff\xff\x7f",
        b"\x80\x02T\xff\xff\xff\xff",
        b"\x80\x04\x95\xff\xff\xff\xff\xff\xff\xff\xffN.",
        b"\x80\x05\x96\xff\xff\xff\xff\xff\xff\xff\xff",
    ];
    for pickle in cases {
        let msg = unpickle(pickle).unwrap_err().to_string();
        assert!(msg.contains("exceeds") || msg.contains("negative"), "{msg}");
    }
}

#[test]
fn memo_copy_amplification_is_bounded() {
    // One 1 MiB string, then 10 000 references to it (~10 GiB if copied).
    let mut p = Pickler::new();
    p.raw(b"]").mark().str(&"x".repeat(1 << 20));
    let id = p.put();
    for _ in 0..10_000 {
        p.get(id);
    }
    p.raw(b"e");
    let msg = unpickle(&p.finish()).unwrap_err().to_string();
    assert!(msg.contains("memo"), "{msg}");
}

#[test]
fn malformed_streams_are_errors() {
    let cases: [&[u8]; 9] = [
        b"",
        b"\x80\x02",
        b"\x80\x06N.",
        b"\x80\x02.",
        b"\x80\x02e.",
        b"\x80\x02h\x05.",
        b"\x80\x02K\x01K\x02s.",
        b"\x80\x02NNR.",
        b"\x80\x02\x82\x01.",
    ];
    for pickle in cases {
        assert!(unpickle(pickle).is_err(), "{pickle:?}");
    }
}
