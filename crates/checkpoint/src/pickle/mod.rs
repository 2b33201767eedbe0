//! A restricted unpickler: reads Python pickles (protocols 0 to 5) as data,
//! never executing anything.
//!
//! # What is accepted
//!
//! The opcodes that PyTorch, NumPy and Python 2/3 use for plain data: numbers,
//! strings, bytes, lists, tuples, dicts, memo operations, frames, persistent
//! ids, `GLOBAL`/`STACK_GLOBAL`, `REDUCE`, `NEWOBJ` and `BUILD`. Python 2 `str`
//! (`STRING`, `BINSTRING`, `SHORT_BINSTRING`) is read as [`Value::Bytes`], as
//! Python 3 does with `encoding='bytes'`. Sets, extension codes, `INST`/`OBJ`
//! and out-of-band buffers are rejected.
//!
//! `GLOBAL` is an **allow-list** (see [`Global`]): `collections.OrderedDict`,
//! the `torch._utils` tensor/parameter rebuild functions, the `torch.*Storage`
//! types, `torch.Size`, numpy's `_reconstruct`, `ndarray`, `dtype` and
//! `scalar`, and `_codecs.encode`. Calling them builds a [`Value`]; nothing is
//! imported or run. Any other global is refused with
//! `refusing to load global 'os.system': only tensors, storages, numbers,
//! strings and containers are allowed`.
//!
//! Persistent ids must be PyTorch storage ids (see [`StorageRef`]).
//!
//! # Resource limits
//!
//! Malformed or hostile input gives an error, never a panic, a hang or an
//! unbounded allocation: every length is checked against the remaining input,
//! nesting is limited to [`MAX_DEPTH`] levels, the stack to [`MAX_STACK`]
//! entries and the memo to [`MAX_MEMO`] entries, and values copied out of the
//! memo may total at most four times the input size plus 64 MiB.
//!
//! # Sharing
//!
//! Values are trees, not graphs: a memo reference (`GET`) yields a copy of the
//! memoized object as it is at that moment. Recursive structures (an object
//! that contains itself) cannot be represented; referring to an object that is
//! still being built yields its partial state.

mod globals;
mod machine;
mod value;

pub use globals::Global;
pub use machine::{unpickle, unpickle_prefix, MAX_DEPTH, MAX_MEMO, MAX_STACK};
pub use value::{NdArray, NumpyDtype, StorageRef, StorageView, TensorRef, Value};
