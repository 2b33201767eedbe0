//! A tiny protocol-2 pickler that lays out checkpoints the way `torch.save`
//! does, for tests.

use std::io::Write;

/// Builds a pickle opcode by opcode.
pub struct Pickler {
    out: Vec<u8>,
    memo: u8,
}

impl Default for Pickler {
    fn default() -> Self {
        Self::new()
    }
}

impl Pickler {
    pub fn new() -> Self {
        Self {
            out: vec![0x80, 2],
            memo: 0,
        }
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.out.push(b'.');
        self.out
    }

    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.out.extend_from_slice(bytes);
        self
    }

    pub fn mark(&mut self) -> &mut Self {
        self.raw(b"(")
    }

    pub fn none(&mut self) -> &mut Self {
        self.raw(b"N")
    }

    pub fn int(&mut self, i: i64) -> &mut Self {
        match i {
            0..=255 => self.raw(&[b'K', i as u8]),
            256..=65535 => self.raw(b"M").raw(&(i as u16).to_le_bytes()),
            _ if i32::try_from(i).is_ok() => self.raw(b"J").raw(&(i as i32).to_le_bytes()),
            _ => self.raw(&[0x8a, 8]).raw(&i.to_le_bytes()),
        }
    }

    pub fn float(&mut self, f: f64) -> &mut Self {
        self.raw(b"G").raw(&f.to_be_bytes())
    }

    pub fn str(&mut self, s: &str) -> &mut Self {
        self.raw(b"X")
            .raw(&(s.len() as u32).to_le_bytes())
            .raw(s.as_bytes())
    }

    /// A Python 2 `str` (`SHORT_BINSTRING` / `BINSTRING`).
    pub fn py2_str(&mut self, b: &[u8]) -> &mut Self {
        if b.len() < 256 {
            self.raw(&[b'U', b.len() as u8]).raw(b)
        } else {
            self.raw(b"T").raw(&(b.len() as u32).to_le_bytes()).raw(b)
        }
    }

    pub fn global(&mut self, module: &str, name: &str) -> &mut Self {
        self.raw(b"c")
            .raw(module.as_bytes())
            .raw(b"\n")
            .raw(name.as_bytes())
            .raw(b"\n")
    }

    /// `TUPLE` (from the last mark).
    pub fn tuple(&mut self) -> &mut Self {
        self.raw(b"t")
    }

    pub fn int_tuple(&mut self, items: &[usize]) -> &mut Self {
        self.mark();
        for &i in items {
            self.int(i as i64);
        }
        self.tuple()
    }

    pub fn reduce(&mut self) -> &mut Self {
        self.raw(b"R")
    }

    /// `BINPUT` with the next memo index; returns it.
    pub fn put(&mut self) -> u8 {
        let id = self.memo;
        self.memo += 1;
        self.raw(&[b'q', id]);
        id
    }

    pub fn get(&mut self, id: u8) -> &mut Self {
        self.raw(&[b'h', id])
    }

    /// `OrderedDict()` (memoized), ready for `SETITEMS`.
    pub fn ordered_dict(&mut self) -> &mut Self {
        self.global("collections", "OrderedDict").raw(b")").reduce();
        self.put();
        self
    }

    /// A tensor as `torch.save` pickles it: `_rebuild_tensor_v2` with a
    /// storage persistent id (6-tuple with view metadata when `legacy`).
    pub fn tensor(&mut self, t: &FakeTensor, legacy: bool) -> &mut Self {
        self.global("torch._utils", "_rebuild_tensor_v2");
        self.mark()
            .mark()
            .str("storage")
            .global("torch", t.storage_type);
        self.str(t.key).str("cuda:0").int(t.storage_numel as i64);
        if legacy {
            match t.view {
                Some((key, offset, numel)) => self
                    .mark()
                    .str(key)
                    .int(offset as i64)
                    .int(numel as i64)
                    .tuple(),
                None => self.none(),
            };
        }
        self.tuple().raw(b"Q");
        self.int(t.offset as i64)
            .int_tuple(&t.size)
            .int_tuple(&t.stride);
        self.raw(&[0x89]); // requires_grad = False
        self.global("collections", "OrderedDict").raw(b")").reduce();
        self.tuple().reduce();
        self.put();
        self
    }
}

/// A tensor to pickle.
#[derive(Clone)]
pub struct FakeTensor {
    pub storage_type: &'static str,
    pub key: &'static str,
    pub storage_numel: usize,
    pub offset: usize,
    pub size: Vec<usize>,
    pub stride: Vec<usize>,
    /// Legacy view metadata `(view_key, offset, numel)`.
    pub view: Option<(&'static str, usize, usize)>,
}

/// A storage: key, element size and raw little-endian bytes.
pub struct FakeStorage {
    pub key: &'static str,
    pub element_size: usize,
    pub bytes: Vec<u8>,
}

/// `{'epoch': 7, 'arch': 'resnet', 'state_dict': OrderedDict(entries)}`
/// with torch's `_metadata` attribute set through `BUILD`.
pub fn checkpoint_pickle(entries: &[(&str, FakeTensor)], legacy: bool) -> Vec<u8> {
    let mut p = Pickler::new();
    p.raw(b"}");
    p.put();
    p.mark()
        .str("epoch")
        .int(7)
        .str("arch")
        .str("resnet")
        .str("state_dict");
    p.ordered_dict();
    p.mark();
    for (name, tensor) in entries {
        p.str(name).tensor(tensor, legacy);
    }
    p.raw(b"u");
    // state: {'_metadata': OrderedDict([('', {'version': 1})])}
    p.raw(b"}").mark().str("_metadata").ordered_dict();
    p.mark().str("").raw(b"}").str("version").int(1).raw(b"su");
    p.raw(b"u").raw(b"b");
    p.raw(b"u");
    p.finish()
}

/// A legacy (torch < 1.6) file: magic, protocol, sys info, object, keys,
/// storages in key order.
pub fn legacy_file(object_pickle: &[u8], storages: &[FakeStorage]) -> Vec<u8> {
    let mut out = vec![
        0x80, 2, 0x8a, 10, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, b'.',
    ];
    let mut p = Pickler::new();
    p.int(1001);
    out.extend(p.finish());
    let mut p = Pickler::new();
    p.raw(b"}").mark().str("protocol_version").int(1001);
    p.str("little_endian").raw(&[0x88]).raw(b"u");
    out.extend(p.finish());
    out.extend_from_slice(object_pickle);
    let mut p = Pickler::new();
    p.raw(b"]").mark();
    for s in storages {
        p.str(s.key);
    }
    p.raw(b"e");
    out.extend(p.finish());
    for s in storages {
        out.extend(((s.bytes.len() / s.element_size) as i64).to_le_bytes());
        out.extend(&s.bytes);
    }
    out
}

/// A zip (torch >= 1.6) file with records under `archive/`.
pub fn zip_file(object_pickle: &[u8], storages: &[FakeStorage]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let mut add = |name: String, bytes: &[u8]| {
        zip.start_file(name, options).unwrap();
        zip.write_all(bytes).unwrap();
    };
    add("archive/data.pkl".into(), object_pickle);
    add("archive/byteorder".into(), b"little");
    for s in storages {
        add(format!("archive/data/{}", s.key), &s.bytes);
    }
    add("archive/version".into(), b"3\n");
    zip.finish().unwrap().into_inner()
}
