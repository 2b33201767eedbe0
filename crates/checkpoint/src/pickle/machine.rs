//! The pickle virtual machine.

use super::globals;
use super::value::Value;
use crate::error::{bail, FormatError};
use std::collections::HashMap;

/// Deepest nesting of containers accepted.
pub const MAX_DEPTH: usize = 100;
/// Most values on the stack at once.
pub const MAX_STACK: usize = 1 << 20;
/// Most distinct memo entries.
pub const MAX_MEMO: usize = 1 << 21;
/// Highest pickle protocol understood.
const MAX_PROTOCOL: u8 = 5;

/// Unpickles the first pickle in `bytes` (anything after its `STOP` is
/// ignored, as Python's `pickle.loads` does).
pub fn unpickle(bytes: &[u8]) -> Result<Value, FormatError> {
    unpickle_prefix(bytes).map(|(value, _)| value)
}

/// Unpickles the first pickle in `bytes` and returns it with the number of
/// bytes it occupied, so that a sequence of pickles can be read.
pub fn unpickle_prefix(bytes: &[u8]) -> Result<(Value, usize), FormatError> {
    let mut machine = Machine::new(bytes);
    match machine.run() {
        Ok(value) => Ok((value, machine.pos)),
        Err(e) => bail(format!("{e} (at pickle byte {})", machine.op_pos)),
    }
}

/// A value on the stack with its nesting depth and the memo ids that refer
/// to it while it is there.
struct Slot {
    value: Value,
    depth: usize,
    memo_ids: Vec<u32>,
}

/// A memo entry: a stack position while the object is on the stack (so that
/// later changes to it are seen), else a stored copy.
enum MemoEntry {
    OnStack(usize),
    Stored(Value, usize),
}

struct Machine<'a> {
    input: &'a [u8],
    pos: usize,
    /// Position of the opcode being executed, for messages.
    op_pos: usize,
    stack: Vec<Slot>,
    /// Stack lengths at each open `MARK`.
    marks: Vec<usize>,
    memo: HashMap<u32, MemoEntry>,
    /// Bytes that copies out of the memo may still take.
    copy_budget: usize,
}

fn truncated<T>() -> Result<T, FormatError> {
    bail("unexpected end of data (the file is truncated)")
}

impl<'a> Machine<'a> {
    fn new(input: &'a [u8]) -> Self {
        Self {
            input,
            pos: 0,
            op_pos: 0,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            copy_budget: input.len().saturating_mul(4).saturating_add(64 << 20),
        }
    }

    fn run(&mut self) -> Result<Value, FormatError> {
        loop {
            self.op_pos = self.pos;
            let op = self.byte()?;
            if op == b'.' {
                return Ok(self.pop()?.value);
            }
            self.step(op)?;
        }
    }

    /// Executes one opcode other than `STOP`.
    fn step(&mut self, op: u8) -> Result<(), FormatError> {
        match op {
            0x80 => self.proto(),
            0x95 => self.frame(),
            b'(' => self.mark(),
            b'0' => self.pop_any(),
            b'1' => self.pop_mark().map(drop),
            b'2' => self.dup(),
            b'N' => self.push_leaf(Value::None),
            0x88 => self.push_leaf(Value::Bool(true)),
            0x89 => self.push_leaf(Value::Bool(false)),
            b'I' | b'L' | b'F' | b'J' | b'K' | b'M' | b'G' | 0x8a | 0x8b => self.number(op),
            b'S' | b'T' | b'U' | b'B' | b'C' | 0x8e | 0x96 => self.bytes(op),
            b'V' | b'X' | 0x8c | 0x8d => self.unicode(op),
            b')' | b't' | 0x85..=0x87 => self.tuple(op),
            b']' | b'l' | b'a' | b'e' => self.list(op),
            b'}' | b'd' | b's' | b'u' => self.dict(op),
            b'p' | b'q' | b'r' | 0x94 => self.memo_put(op),
            b'g' | b'h' | b'j' => self.memo_get(op),
            b'c' | 0x93 => self.global(op),
            b'R' | 0x81 => self.reduce(),
            b'b' => self.build(),
            b'P' | b'Q' => self.persistent_id(op),
            _ => bail(format!(
                "unsupported pickle opcode 0x{op:02x} ({:?}); only plain data is supported",
                char::from(op)
            )),
        }
    }

    // ---- reading input ----

    fn take(&mut self, n: usize) -> Result<&'a [u8], FormatError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.input.len());
        match end {
            Some(end) => {
                let bytes = &self.input[self.pos..end];
                self.pos = end;
                Ok(bytes)
            }
            None => truncated(),
        }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], FormatError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn byte(&mut self) -> Result<u8, FormatError> {
        Ok(self.array::<1>()?[0])
    }

    /// Reads `len` bytes, where `len` comes from the input.
    fn take_len(&mut self, len: u64) -> Result<&'a [u8], FormatError> {
        let left = self.input.len() - self.pos;
        match usize::try_from(len) {
            Ok(n) if n <= left => self.take(n),
            _ => bail(format!(
                "declared length {len} exceeds the {left} bytes left (the file is truncated or corrupt)"
            )),
        }
    }

    /// A length given by an unsigned little-endian integer of `N` bytes.
    fn sized<const N: usize>(&mut self) -> Result<&'a [u8], FormatError> {
        let len = self
            .array::<N>()?
            .iter()
            .rev()
            .fold(0u64, |a, &b| (a << 8) | u64::from(b));
        self.take_len(len)
    }

    /// A length given by a signed 4-byte integer.
    fn sized_i32(&mut self) -> Result<&'a [u8], FormatError> {
        let len = i32::from_le_bytes(self.array()?);
        match u64::try_from(len) {
            Ok(len) => self.take_len(len),
            Err(_) => bail(format!("negative length {len}")),
        }
    }

    /// A text line without its `'\n'`.
    fn line(&mut self) -> Result<&'a [u8], FormatError> {
        let rest = &self.input[self.pos..];
        match rest.iter().position(|&b| b == b'\n') {
            Some(n) => {
                self.pos += n + 1;
                Ok(&rest[..n])
            }
            None => truncated(),
        }
    }

    fn text_line(&mut self) -> Result<&'a str, FormatError> {
        std::str::from_utf8(self.line()?).map_err(|_| FormatError::new("text line is not UTF-8"))
    }

    fn decimal<T: std::str::FromStr>(&mut self, what: &str) -> Result<T, FormatError> {
        let line = self.text_line()?;
        line.trim()
            .parse()
            .map_err(|_| FormatError::new(format!("bad {what} {line:?}")))
    }

    // ---- the stack ----

    fn push(&mut self, value: Value, depth: usize) -> Result<(), FormatError> {
        if depth > MAX_DEPTH {
            return bail(format!("objects nested more than {MAX_DEPTH} levels deep"));
        }
        if self.stack.len() >= MAX_STACK {
            return bail(format!("more than {MAX_STACK} values on the pickle stack"));
        }
        self.stack.push(Slot {
            value,
            depth,
            memo_ids: Vec::new(),
        });
        Ok(())
    }

    fn push_leaf(&mut self, value: Value) -> Result<(), FormatError> {
        self.push(value, 0)
    }

    /// Stack length at the innermost open mark.
    fn floor(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn pop(&mut self) -> Result<Slot, FormatError> {
        if self.stack.len() <= self.floor() {
            return bail("pickle stack underflow");
        }
        match self.stack.pop() {
            Some(slot) => {
                self.release(self.stack.len(), &slot)?;
                Ok(slot)
            }
            None => bail("pickle stack underflow"),
        }
    }

    fn top(&mut self) -> Result<&mut Slot, FormatError> {
        if self.stack.len() <= self.floor() {
            return bail("pickle stack underflow");
        }
        self.stack
            .last_mut()
            .ok_or_else(|| FormatError::new("pickle stack underflow"))
    }

    fn mark(&mut self) -> Result<(), FormatError> {
        if self.marks.len() >= MAX_STACK {
            return bail("too many open marks");
        }
        self.marks.push(self.stack.len());
        Ok(())
    }

    /// Removes everything above the innermost mark, and the mark.
    fn pop_mark(&mut self) -> Result<Vec<Slot>, FormatError> {
        let mark = self
            .marks
            .pop()
            .ok_or_else(|| FormatError::new("missing MARK"))?;
        let slots = self.stack.split_off(mark.min(self.stack.len()));
        for (i, slot) in slots.iter().enumerate() {
            self.release(mark + i, slot)?;
        }
        Ok(slots)
    }

    /// `POP`: the top value, or the innermost mark if nothing is above it.
    fn pop_any(&mut self) -> Result<(), FormatError> {
        if self.stack.len() > self.floor() {
            self.pop().map(drop)
        } else {
            self.pop_mark().map(drop)
        }
    }

    fn dup(&mut self) -> Result<(), FormatError> {
        let top = self.top()?;
        let (value, depth) = (top.value.clone(), top.depth);
        self.charge(&value)?;
        self.push(value, depth)
    }

    /// Takes a budgeted copy of a value that leaves or is read from the memo.
    fn charge(&mut self, value: &Value) -> Result<(), FormatError> {
        match self.copy_budget.checked_sub(value.cost()) {
            Some(left) => {
                self.copy_budget = left;
                Ok(())
            }
            None => bail("memo references copy more data than the input size allows"),
        }
    }

    /// The slot at `index` is leaving the stack: memo entries that point at it
    /// keep a copy.
    fn release(&mut self, index: usize, slot: &Slot) -> Result<(), FormatError> {
        for id in &slot.memo_ids {
            if matches!(self.memo.get(id), Some(MemoEntry::OnStack(i)) if *i == index) {
                self.charge(&slot.value)?;
                self.memo
                    .insert(*id, MemoEntry::Stored(slot.value.clone(), slot.depth));
            }
        }
        Ok(())
    }

    // ---- opcodes ----

    fn proto(&mut self) -> Result<(), FormatError> {
        let version = self.byte()?;
        if version > MAX_PROTOCOL {
            return bail(format!("unsupported pickle protocol {version}"));
        }
        Ok(())
    }

    /// `FRAME`: frames only group opcodes; the length is checked and ignored.
    fn frame(&mut self) -> Result<(), FormatError> {
        let len = u64::from_le_bytes(self.array()?);
        let left = self.input.len() - self.pos;
        if usize::try_from(len).map_or(true, |n| n > left) {
            return bail(format!(
                "frame of {len} bytes exceeds the {left} bytes left"
            ));
        }
        Ok(())
    }

    fn number(&mut self, op: u8) -> Result<(), FormatError> {
        let value = match op {
            b'I' => match self.text_line()? {
                "00" => Value::Bool(false),
                "01" => Value::Bool(true),
                text => Value::Int(parse_int(text)?),
            },
            b'L' => Value::Int(parse_int(self.text_line()?.trim_end_matches('L'))?),
            b'F' => Value::Float(self.decimal("float")?),
            b'J' => Value::Int(i32::from_le_bytes(self.array()?).into()),
            b'K' => Value::Int(self.byte()?.into()),
            b'M' => Value::Int(u16::from_le_bytes(self.array()?).into()),
            b'G' => Value::Float(f64::from_be_bytes(self.array()?)),
            0x8a => long(self.sized::<1>()?),
            _ => long(self.sized_i32()?),
        };
        self.push_leaf(value)
    }

    fn bytes(&mut self, op: u8) -> Result<(), FormatError> {
        let bytes = match op {
            b'S' => unescape_repr(self.line()?)?,
            b'T' => self.sized_i32()?.to_vec(),
            b'U' | b'C' => self.sized::<1>()?.to_vec(),
            b'B' => self.sized::<4>()?.to_vec(),
            _ => self.sized::<8>()?.to_vec(),
        };
        self.push_leaf(Value::Bytes(bytes))
    }

    fn unicode(&mut self, op: u8) -> Result<(), FormatError> {
        let text = match op {
            b'V' => {
                let text = raw_unicode_unescape(self.line()?)?;
                return self.push_leaf(Value::Str(text));
            }
            b'X' => self.sized::<4>()?,
            0x8c => self.sized::<1>()?,
            _ => self.sized::<8>()?,
        };
        let text =
            std::str::from_utf8(text).map_err(|_| FormatError::new("string is not UTF-8"))?;
        self.push_leaf(Value::Str(text.to_string()))
    }

    /// Pops `n` values (in stack order).
    fn pop_n(&mut self, n: usize) -> Result<Vec<Slot>, FormatError> {
        let mut slots = (0..n).map(|_| self.pop()).collect::<Result<Vec<_>, _>>()?;
        slots.reverse();
        Ok(slots)
    }

    /// Pushes a container made of `slots`.
    fn push_container(
        &mut self,
        slots: Vec<Slot>,
        make: fn(Vec<Value>) -> Result<Value, FormatError>,
    ) -> Result<(), FormatError> {
        let depth = slots.iter().map(|s| s.depth + 1).max().unwrap_or(0);
        let value = make(slots.into_iter().map(|s| s.value).collect())?;
        self.push(value, depth)
    }

    fn tuple(&mut self, op: u8) -> Result<(), FormatError> {
        let slots = match op {
            b')' => Vec::new(),
            b't' => self.pop_mark()?,
            _ => self.pop_n(usize::from(op - 0x84))?,
        };
        self.push_container(slots, |v| Ok(Value::Tuple(v)))
    }

    fn list(&mut self, op: u8) -> Result<(), FormatError> {
        let slots = match op {
            b']' => Vec::new(),
            b'l' => self.pop_mark()?,
            b'a' => vec![self.pop()?],
            _ => self.pop_mark()?,
        };
        if matches!(op, b']' | b'l') {
            return self.push_container(slots, |v| Ok(Value::List(v)));
        }
        let (items, depth) = flatten(slots);
        let top = self.top()?;
        let Value::List(list) = &mut top.value else {
            return bail(format!("APPEND to a {}", top.value.kind()));
        };
        list.extend(items);
        top.depth = top.depth.max(depth);
        check_depth(top.depth)
    }

    fn dict(&mut self, op: u8) -> Result<(), FormatError> {
        let slots = match op {
            b'}' => Vec::new(),
            b's' => self.pop_n(2)?,
            _ => self.pop_mark()?,
        };
        if op == b'}' || op == b'd' {
            return self.push_container(slots, |v| Ok(Value::Dict(pairs(v)?)));
        }
        let (items, depth) = flatten(slots);
        let entries = pairs(items)?;
        let top = self.top()?;
        let Value::Dict(dict) = &mut top.value else {
            return bail(format!("SETITEM on a {}", top.value.kind()));
        };
        dict.extend(entries);
        top.depth = top.depth.max(depth);
        check_depth(top.depth)
    }

    fn memo_put(&mut self, op: u8) -> Result<(), FormatError> {
        let id = match op {
            b'p' => self.decimal("memo index")?,
            b'q' => self.byte()?.into(),
            b'r' => u32::from_le_bytes(self.array()?),
            _ => u32::try_from(self.memo.len()).unwrap_or(u32::MAX),
        };
        if self.memo.len() >= MAX_MEMO && !self.memo.contains_key(&id) {
            return bail(format!("more than {MAX_MEMO} memo entries"));
        }
        let index = self.stack.len().wrapping_sub(1);
        self.top()?.memo_ids.push(id);
        self.memo.insert(id, MemoEntry::OnStack(index));
        Ok(())
    }

    fn memo_get(&mut self, op: u8) -> Result<(), FormatError> {
        let id: u32 = match op {
            b'g' => self.decimal("memo index")?,
            b'h' => self.byte()?.into(),
            _ => u32::from_le_bytes(self.array()?),
        };
        let (value, depth) = match self.memo.get(&id) {
            Some(MemoEntry::OnStack(i)) => match self.stack.get(*i) {
                Some(slot) => (slot.value.clone(), slot.depth),
                None => return bail("memo entry lost"),
            },
            Some(MemoEntry::Stored(value, depth)) => (value.clone(), *depth),
            None => return bail(format!("memo index {id} was never stored")),
        };
        self.charge(&value)?;
        self.push(value, depth)
    }

    fn global(&mut self, op: u8) -> Result<(), FormatError> {
        let global = if op == b'c' {
            let module = self.text_line()?;
            let name = self.text_line()?;
            globals::resolve(module, name)?
        } else {
            let name = self.pop()?.value;
            let module = self.pop()?.value;
            match (module.as_str(), name.as_str()) {
                (Some(m), Some(n)) => globals::resolve(m, n)?,
                _ => return bail("STACK_GLOBAL expects two strings"),
            }
        };
        self.push_leaf(Value::Global(global))
    }

    /// `REDUCE` and `NEWOBJ`: calls an allow-listed global.
    fn reduce(&mut self) -> Result<(), FormatError> {
        let args = self.pop()?;
        let callable = self.pop()?.value;
        let Value::Global(global) = callable else {
            return bail(format!("cannot call a {}", callable.kind()));
        };
        let Value::Tuple(items) = args.value else {
            return bail("call arguments are not a tuple");
        };
        let result = globals::call(global, items)?;
        self.push(result, args.depth)
    }

    fn build(&mut self) -> Result<(), FormatError> {
        let state = self.pop()?.value;
        globals::build(&mut self.top()?.value, state)
    }

    fn persistent_id(&mut self, op: u8) -> Result<(), FormatError> {
        let pid = if op == b'P' {
            Value::Str(self.text_line()?.to_string())
        } else {
            self.pop()?.value
        };
        self.push_leaf(globals::storage_from_pid(pid)?)
    }
}

/// Values of `slots` and the depth a container holding them gets.
fn flatten(slots: Vec<Slot>) -> (Vec<Value>, usize) {
    let depth = slots.iter().map(|s| s.depth + 1).max().unwrap_or(0);
    (slots.into_iter().map(|s| s.value).collect(), depth)
}

fn check_depth(depth: usize) -> Result<(), FormatError> {
    if depth > MAX_DEPTH {
        return bail(format!("objects nested more than {MAX_DEPTH} levels deep"));
    }
    Ok(())
}

/// Groups alternating keys and values into pairs.
fn pairs(items: Vec<Value>) -> Result<Vec<(Value, Value)>, FormatError> {
    if items.len() % 2 != 0 {
        return bail("odd number of items for a dict");
    }
    let mut items = items.into_iter();
    let mut out = Vec::with_capacity(items.len() / 2);
    while let (Some(k), Some(v)) = (items.next(), items.next()) {
        out.push((k, v));
    }
    Ok(out)
}

fn parse_int(text: &str) -> Result<i64, FormatError> {
    text.trim()
        .parse()
        .map_err(|_| FormatError::new(format!("bad or too large integer {text:?}")))
}

/// Decodes a little-endian two's-complement integer (`LONG1`/`LONG4`).
fn long(bytes: &[u8]) -> Value {
    if bytes.len() > 8 {
        return Value::BigInt(bytes.to_vec());
    }
    let negative = bytes.last().is_some_and(|&b| b & 0x80 != 0);
    let mut buf = [if negative { 0xff } else { 0 }; 8];
    buf[..bytes.len()].copy_from_slice(bytes);
    Value::Int(i64::from_le_bytes(buf))
}

/// Decodes the Python `repr` of a Python 2 `str` (protocol 0 `STRING`).
fn unescape_repr(line: &[u8]) -> Result<Vec<u8>, FormatError> {
    let body = match line {
        [q @ (b'\'' | b'"'), body @ .., end] if end == q => body,
        _ => return bail("STRING argument is not a quoted string"),
    };
    let mut out = Vec::with_capacity(body.len());
    let mut rest = body;
    while let Some((&b, tail)) = rest.split_first() {
        rest = tail;
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let (decoded, tail) = escape(rest)?;
        out.extend(decoded);
        rest = tail;
    }
    Ok(out)
}

/// Decodes one escape sequence after a backslash.
fn escape(rest: &[u8]) -> Result<(Option<u8>, &[u8]), FormatError> {
    let Some((&c, tail)) = rest.split_first() else {
        return bail("STRING ends with a backslash");
    };
    let simple = match c {
        b'n' => Some(b'\n'),
        b'r' => Some(b'\r'),
        b't' => Some(b'\t'),
        b'a' => Some(0x07),
        b'b' => Some(0x08),
        b'f' => Some(0x0c),
        b'v' => Some(0x0b),
        b'\\' | b'\'' | b'"' => Some(c),
        _ => None,
    };
    if let Some(byte) = simple {
        return Ok((Some(byte), tail));
    }
    if c == b'x' {
        let hex = tail.get(..2).and_then(|h| std::str::from_utf8(h).ok());
        let value = hex.and_then(|h| u8::from_str_radix(h, 16).ok());
        return match value {
            Some(v) => Ok((Some(v), &tail[2..])),
            None => bail("bad \\x escape in STRING"),
        };
    }
    if c.is_ascii_digit() && c < b'8' {
        let n = rest
            .iter()
            .take(3)
            .take_while(|d| (b'0'..b'8').contains(d))
            .count();
        let value = rest[..n]
            .iter()
            .fold(0u32, |a, &d| a * 8 + u32::from(d - b'0'));
        return Ok((Some((value & 0xff) as u8), &rest[n..]));
    }
    // Unknown escapes stay as they are, as in Python.
    Ok((Some(b'\\'), rest))
}

/// Decodes Python's `raw-unicode-escape` (protocol 0 `UNICODE`): `\uXXXX`
/// and `\UXXXXXXXX` escapes; every other byte is a Latin-1 character.
fn raw_unicode_unescape(line: &[u8]) -> Result<String, FormatError> {
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < line.len() {
        let digits = match (line[i], line.get(i + 1)) {
            (b'\\', Some(b'u')) => 4,
            (b'\\', Some(b'U')) => 8,
            (b, _) => {
                out.push(char::from(b));
                i += 1;
                continue;
            }
        };
        let code = line
            .get(i + 2..i + 2 + digits)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .and_then(char::from_u32);
        match code {
            Some(ch) => out.push(ch),
            None => return bail("bad \\u escape in UNICODE"),
        }
        i += 2 + digits;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_longs() {
        assert_eq!(long(&[]), Value::Int(0));
        assert_eq!(long(&[0xff]), Value::Int(-1));
        assert_eq!(long(&[0x00, 0x80, 0x00]), Value::Int(32768));
        assert_eq!(long(&[0x00, 0x80, 0xff]), Value::Int(-32768));
        assert!(matches!(long(&[1; 10]), Value::BigInt(_)));
    }

    #[test]
    fn decodes_protocol_0_strings() {
        assert_eq!(
            unescape_repr(br"'a\'b\\c\x41\n\101'").unwrap(),
            b"a'b\\cA\nA"
        );
        assert_eq!(unescape_repr(br#""q""#).unwrap(), b"q");
        assert!(unescape_repr(b"'open").is_err());
        assert!(unescape_repr(br"'\x4'").is_err());
        assert_eq!(
            raw_unicode_unescape(br"a\u00e9\U0001F600\x").unwrap(),
            "a\u{e9}\u{1F600}\\x"
        );
        assert!(raw_unicode_unescape(br"\ud800").is_err());
    }

    #[test]
    fn protocol_0_dict() {
        let pickle = b"(dp0\nS'a'\np1\nI1\nsV\\u00e9\np2\nF2.5\nsS'l'\n(lp3\nL5L\naI01\nas.";
        let value = unpickle(pickle).unwrap();
        assert_eq!(
            value,
            Value::Dict(vec![
                (Value::Bytes(b"a".to_vec()), Value::Int(1)),
                (Value::Str("\u{e9}".into()), Value::Float(2.5)),
                (
                    Value::Bytes(b"l".to_vec()),
                    Value::List(vec![Value::Int(5), Value::Bool(true)])
                ),
            ])
        );
    }

    #[test]
    fn memo_sees_later_changes_while_on_stack() {
        // [ [], <get 0> ] where list 0 gets an item before the get.
        let pickle = b"\x80\x02](]q\x00K\x07ah\x00e.";
        let v = unpickle(pickle).unwrap();
        let inner = Value::List(vec![Value::Int(7)]);
        assert_eq!(v, Value::List(vec![inner.clone(), inner]));
    }

    #[test]
    fn depth_is_limited() {
        let mut pickle = b"\x80\x02N".to_vec();
        pickle.extend(std::iter::repeat_n(0x85u8, MAX_DEPTH + 1));
        pickle.push(b'.');
        assert!(unpickle(&pickle)
            .unwrap_err()
            .to_string()
            .contains("nested"));
    }
}
