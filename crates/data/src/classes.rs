//! [`Classes`]: which classes of a data set to read (the `--classes` option).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::{DataError, Result};
use crate::source::ImageSource;
use crate::RawImage;

/// Which classes of a data set to read, and in which label order.
///
/// Parsed from `all`, a number `N` or the path of a file:
/// * `all` (the default): every class, in the data set's order;
/// * `N`: the first `N` classes of the data set's class list (for
///   Tiny-ImageNet the first `N` lines of `wnids.txt`, so `200` gives the
///   standard data set from a copy that lists extra classes);
/// * `FILE`: the classes named in the file, one per line (blank lines
///   skipped, text after a tab ignored), **in the file's order**: the file
///   can also put the labels in the order a model was trained with. A line
///   names a class by its identifier (Tiny-ImageNet: the wnid; image folders:
///   the folder name; other formats: the class name) or by its class name as
///   reports show it.
///
/// Images of the other classes are left out and labels are renumbered
/// `0..K-1` in the selection's order. A class that the data set does not
/// have, a class named twice, or `N` above the number of classes is an error.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Classes {
    /// Every class.
    #[default]
    All,
    /// The first `N` classes of the class list.
    First(usize),
    /// The classes named in `file`, in its order.
    Listed {
        /// The file the names were read from (for messages).
        file: PathBuf,
        /// `(line number, name)`, line numbers from 1.
        names: Vec<(usize, String)>,
    },
}

impl FromStr for Classes {
    type Err = DataError;

    /// `all`, a positive number, or an existing file (read now).
    fn from_str(s: &str) -> Result<Self> {
        let text = s.trim();
        if text.eq_ignore_ascii_case("all") {
            return Ok(Classes::All);
        }
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            return match text.parse::<usize>() {
                Ok(0) => Err(DataError::Option(
                    "--classes 0 selects no class; give a positive number, all, or a file".into(),
                )),
                Ok(n) => Ok(Classes::First(n)),
                Err(_) => Err(DataError::Option(format!(
                    "--classes {text} is too large a number of classes"
                ))),
            };
        }
        let file = PathBuf::from(text);
        if text.is_empty() || !file.is_file() {
            return Err(DataError::Option(format!(
                "--classes {s:?} is neither `all`, a number of classes (the first N of the data set's class list) \
                 nor an existing file with one class per line"
            )));
        }
        let bytes = crate::util::read_file(&file)?;
        let names: Vec<(usize, String)> = String::from_utf8_lossy(&bytes)
            .lines()
            .enumerate()
            .map(|(i, line)| {
                (
                    i + 1,
                    line.split('\t').next().unwrap_or("").trim().to_owned(),
                )
            })
            .filter(|(_, name)| !name.is_empty())
            .collect();
        if names.is_empty() {
            return Err(DataError::invalid(
                &file,
                "names no class (--classes FILE needs one class per line)",
            ));
        }
        Ok(Classes::Listed { file, names })
    }
}

impl Classes {
    /// Whether every class is selected.
    pub fn is_all(&self) -> bool {
        *self == Classes::All
    }

    /// The chosen classes as indices into the data set's class list, in
    /// label order. `ids` and `names` are the data set's class identifiers
    /// and display names (same length); `list` is the file or folder that
    /// defines the class list, for messages.
    pub fn select(&self, ids: &[String], names: &[String], list: &Path) -> Result<Vec<usize>> {
        match self {
            Classes::All => Ok((0..ids.len()).collect()),
            Classes::First(n) if *n <= ids.len() => Ok((0..*n).collect()),
            Classes::First(n) => Err(DataError::invalid(
                list,
                format!(
                    "--classes {n} asks for the first {n} classes, but the data set has only {}; \
                     give at most {} or all",
                    ids.len(),
                    ids.len()
                ),
            )),
            Classes::Listed {
                file,
                names: wanted,
            } => select_listed(file, wanted, ids, names, list),
        }
    }
}

fn select_listed(
    file: &Path,
    wanted: &[(usize, String)],
    ids: &[String],
    names: &[String],
    list: &Path,
) -> Result<Vec<usize>> {
    let mut by_id: HashMap<&str, usize> = HashMap::new();
    for (k, id) in ids.iter().enumerate() {
        by_id.entry(id.as_str()).or_insert(k);
    }
    let mut chosen: Vec<usize> = Vec::with_capacity(wanted.len());
    let mut line_of: HashMap<usize, usize> = HashMap::new();
    for (line, want) in wanted {
        let k = match by_id.get(want.as_str()) {
            Some(&k) => k,
            None => {
                let hits: Vec<usize> = (0..names.len()).filter(|&k| names[k] == *want).collect();
                match hits.as_slice() {
                    [k] => *k,
                    [] => {
                        let examples: Vec<String> = ids
                            .iter()
                            .zip(names)
                            .take(3)
                            .map(|(i, n)| {
                                if i == n {
                                    i.clone()
                                } else {
                                    format!("{i} or {n:?}")
                                }
                            })
                            .collect();
                        return Err(DataError::invalid(
                            file,
                            format!(
                                "line {line}: {want:?} is not a class of the data set (classes from {}: {} classes, e.g. {}); \
                                 fix the line or leave the class out",
                                list.display(),
                                ids.len(),
                                examples.join(", ")
                            ),
                        ));
                    }
                    several => {
                        let which: Vec<&str> = several.iter().map(|&k| ids[k].as_str()).collect();
                        return Err(DataError::invalid(
                            file,
                            format!(
                                "line {line}: the class name {want:?} belongs to several classes ({}); name the class by its identifier",
                                which.join(", ")
                            ),
                        ));
                    }
                }
            }
        };
        if let Some(first) = line_of.insert(k, *line) {
            return Err(DataError::invalid(
                file,
                format!(
                    "line {line}: class {} is already chosen on line {first}; name every class once",
                    ids[k]
                ),
            ));
        }
        chosen.push(k);
    }
    Ok(chosen)
}

/// For each class of the full list, its new label (`None`: left out).
pub(crate) fn new_labels(chosen: &[usize], n: usize) -> Vec<Option<usize>> {
    let mut map = vec![None; n];
    for (new, &old) in chosen.iter().enumerate() {
        map[old] = Some(new);
    }
    map
}

/// An [`ImageSource`] restricted to some of its classes, relabelled.
pub(crate) struct ClassSubset {
    inner: Box<dyn ImageSource>,
    /// Indices into `inner` of the images kept.
    index: Vec<usize>,
    labels: Vec<usize>,
    class_names: Vec<String>,
}

/// Restrict `source` to `classes` (identified by their names); `list` names
/// the data in messages. `All` returns `source` unchanged.
pub(crate) fn restrict(
    source: Box<dyn ImageSource>,
    classes: &Classes,
    list: &Path,
) -> Result<Box<dyn ImageSource>> {
    if classes.is_all() {
        return Ok(source);
    }
    let names = source.class_names().to_vec();
    let chosen = classes.select(&names, &names, list)?;
    let map = new_labels(&chosen, names.len());
    let (index, labels): (Vec<usize>, Vec<usize>) = (0..source.len())
        .filter_map(|i| map.get(source.label(i)).copied().flatten().map(|l| (i, l)))
        .unzip();
    Ok(Box::new(ClassSubset {
        inner: source,
        index,
        labels,
        class_names: chosen.iter().map(|&k| names[k].clone()).collect(),
    }))
}

impl ImageSource for ClassSubset {
    fn len(&self) -> usize {
        self.index.len()
    }

    fn label(&self, i: usize) -> usize {
        self.labels[i]
    }

    fn class_names(&self) -> &[String] {
        &self.class_names
    }

    fn load(&self, i: usize) -> Result<RawImage> {
        let &j = self.index.get(i).ok_or(DataError::OutOfRange {
            index: i,
            len: self.len(),
        })?;
        self.inner.load(j)
    }

    fn describe(&self, i: usize) -> String {
        self.index
            .get(i)
            .map_or_else(|| format!("image #{i}"), |&j| self.inner.describe(j))
    }
}
