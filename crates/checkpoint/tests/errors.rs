//! Error messages and hostile checkpoints.
mod common;

use common::pickler::{checkpoint_pickle, legacy_file, zip_file, FakeStorage, Pickler};
use common::samples::{strided, tensor};
use stiffness_checkpoint::{load_state_dict, parse_state_dict, CheckpointError};

fn load_bytes(test: &str, name: &str, bytes: &[u8]) -> Result<(), String> {
    let dir = common::temp_dir(test);
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    load_state_dict(&path).map(drop).map_err(|e| e.to_string())
}

#[test]
fn unknown_format_names_the_file_and_the_bytes() {
    let msg = load_bytes("unknown", "model.pt", b"\x7fELF\x02\x01\x01\x00rest").unwrap_err();
    assert!(msg.contains("model.pt: not a PyTorch checkpoint or safetensors file (starts with bytes 7f 45 4c 46 02 01 01 00); expected .pt/.pth/.th or .safetensors"), "{msg}");
    let msg = load_bytes("unknown-empty", "empty.pt", b"").unwrap_err();
    assert!(msg.contains("empty.pt: not a PyTorch"), "{msg}");
}

#[test]
fn missing_file_is_an_io_error() {
    let err = load_state_dict(std::path::Path::new("/nonexistent/x.th")).unwrap_err();
    assert!(matches!(err, CheckpointError::Io { .. }));
    assert!(
        err.to_string()
            .starts_with("/nonexistent/x.th: cannot read the file"),
        "{err}"
    );
}

#[test]
fn code_in_a_legacy_checkpoint_is_refused() {
    let evil = b"\x80\x02cposix\nsystem\nX\x02\x00\x00\x00idtR.";
    let bytes = legacy_file(evil, &[]);
    let msg = load_bytes("evil-legacy", "evil.th", &bytes).unwrap_err();
    assert!(
        msg.contains("evil.th: cannot read PyTorch legacy checkpoint"),
        "{msg}"
    );
    assert!(
        msg.contains("refusing to load global 'posix.system'"),
        "{msg}"
    );
}

#[test]
fn code_in_a_zip_checkpoint_is_refused() {
    let evil = b"\x80\x04\x8c\x08builtins\x8c\x04exec\x93\x8c\x01x\x85R.";
    let msg = parse_state_dict(&zip_file(evil, &[]))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("refusing to load global 'builtins.exec'"),
        "{msg}"
    );
}

#[test]
fn torchscript_and_whole_modules_are_explained() {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for name in ["m/data.pkl", "m/constants.pkl"] {
        zip.start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        std::io::Write::write_all(&mut zip, b"\x80\x02N.").unwrap();
    }
    let bytes = zip.finish().unwrap().into_inner();
    let msg = parse_state_dict(&bytes).unwrap_err().to_string();
    assert!(msg.contains("TorchScript"), "{msg}");

    let mut p = Pickler::new();
    p.mark()
        .str("module")
        .none()
        .str("model.py")
        .str("class Net: ...")
        .tuple()
        .raw(b"Q");
    let msg = parse_state_dict(&legacy_file(&p.finish(), &[]))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("state_dict()"), "{msg}");
}

#[test]
fn huge_legacy_storage_count_is_an_error() {
    let t = tensor("FloatStorage", "0", 4);
    let mut bytes = legacy_file(
        &checkpoint_pickle(&[("w", t)], true),
        &[FakeStorage {
            key: "0",
            element_size: 4,
            bytes: vec![0; 16],
        }],
    );
    let count_at = bytes.len() - 16 - 8;
    bytes[count_at..count_at + 8].copy_from_slice(&(1i64 << 62).to_le_bytes());
    let msg = parse_state_dict(&bytes).unwrap_err().to_string();
    assert!(msg.contains("truncated"), "{msg}");
}

#[test]
fn expanded_tensors_cannot_exhaust_memory() {
    // 2^20 x 2^20 elements from a 4-byte storage through zero strides.
    let t = strided(
        &tensor("FloatStorage", "0", 1),
        0,
        &[1 << 20, 1 << 20],
        &[0, 0],
    );
    let storages = [FakeStorage {
        key: "0",
        element_size: 4,
        bytes: vec![0; 4],
    }];
    let bytes = zip_file(&checkpoint_pickle(&[("w", t)], false), &storages);
    let msg = parse_state_dict(&bytes).unwrap_err().to_string();
    assert!(
        msg.contains("more elements than the file size allows"),
        "{msg}"
    );
}

#[test]
fn storage_record_size_must_match() {
    let t = tensor("FloatStorage", "0", 4);
    let storages = [FakeStorage {
        key: "0",
        element_size: 4,
        bytes: vec![0; 12],
    }];
    let msg = parse_state_dict(&zip_file(&checkpoint_pickle(&[("w", t)], false), &storages))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("has 12 bytes but its storage needs 16"),
        "{msg}"
    );
}

#[test]
fn huge_safetensors_header_is_an_error() {
    let mut bytes = u64::MAX.to_le_bytes().to_vec();
    bytes.extend(b"{}");
    assert!(parse_state_dict(&bytes).is_err());
    let mut bytes = 10_000u64.to_le_bytes().to_vec();
    bytes.extend(
        b"{\"a\":{\"dtype\":\"F32\",\"shape\":[1000000000,1000000000],\"data_offsets\":[0,4]}}",
    );
    assert!(parse_state_dict(&bytes).is_err());
}
