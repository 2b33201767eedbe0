//! serde helpers that write non-finite floats as the JSON strings "inf",
//! "-inf" and "nan" (JSON has no infinity or NaN) and read them back.
//! Finite values are plain numbers. Use `#[serde(with = "nonfinite")]` on an
//! `f64` field and `#[serde(with = "nonfinite::option")]` on an
//! `Option<f64>` field (`None` is `null`).

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Serialises an f64, non-finite values as "inf", "-inf" or "nan".
pub fn serialize<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
    match non_finite_label(*x) {
        Some(label) => s.serialize_str(label),
        None => s.serialize_f64(*x),
    }
}

/// Deserialises a number or one of the strings "inf", "-inf", "nan".
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    NumberOrLabel::deserialize(d)?
        .value()
        .map_err(D::Error::custom)
}

/// The same for `Option<f64>`; `None` is written as `null`.
pub mod option {
    use super::{Finite, NumberOrLabel};
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialises `Some(x)` like [`super::serialize`], `None` as null.
    pub fn serialize<S: Serializer>(x: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match x {
            Some(v) => s.serialize_some(&Finite(*v)),
            None => s.serialize_none(),
        }
    }

    /// Deserialises null, a number, or "inf", "-inf", "nan".
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        Option::<NumberOrLabel>::deserialize(d)?
            .map(|v| v.value().map_err(D::Error::custom))
            .transpose()
    }
}

fn non_finite_label(x: f64) -> Option<&'static str> {
    match x {
        f64::INFINITY => Some("inf"),
        f64::NEG_INFINITY => Some("-inf"),
        x if x.is_nan() => Some("nan"),
        _ => None,
    }
}

/// Wrapper that serialises through [`serialize`].
struct Finite(f64);

impl Serialize for Finite {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize(&self.0, s)
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrLabel {
    Number(f64),
    Label(String),
}

impl NumberOrLabel {
    fn value(self) -> Result<f64, String> {
        match self {
            Self::Number(x) => Ok(x),
            Self::Label(label) => match label.as_str() {
                "inf" => Ok(f64::INFINITY),
                "-inf" => Ok(f64::NEG_INFINITY),
                "nan" => Ok(f64::NAN),
                other => Err(format!(
                    "expected a number, \"inf\", \"-inf\" or \"nan\", got {other:?}"
                )),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Serialize, Deserialize)]
    struct Probe {
        #[serde(with = "super")]
        x: f64,
        #[serde(with = "super::option")]
        y: Option<f64>,
    }

    fn round_trip(x: f64, y: Option<f64>) -> (String, Probe) {
        let json = serde_json::to_string(&Probe { x, y }).unwrap();
        let back: Probe = serde_json::from_str(&json).unwrap();
        (json, back)
    }

    #[test]
    fn writes_and_reads_non_finite_values() {
        let (json, back) = round_trip(f64::INFINITY, Some(f64::NAN));
        assert_eq!(json, r#"{"x":"inf","y":"nan"}"#);
        assert_eq!(back.x, f64::INFINITY);
        assert!(back.y.unwrap().is_nan());
        let (json, back) = round_trip(f64::NEG_INFINITY, None);
        assert_eq!(json, r#"{"x":"-inf","y":null}"#);
        assert_eq!((back.x, back.y), (f64::NEG_INFINITY, None));
        let (json, back) = round_trip(-1.25, Some(3.0));
        assert_eq!(json, r#"{"x":-1.25,"y":3.0}"#);
        assert_eq!((back.x, back.y), (-1.25, Some(3.0)));
    }

    #[test]
    fn reads_integers_and_rejects_other_strings() {
        let p: Probe = serde_json::from_str(r#"{"x":2,"y":-7}"#).unwrap();
        assert_eq!((p.x, p.y), (2.0, Some(-7.0)));
        assert!(serde_json::from_str::<Probe>(r#"{"x":"infinity","y":null}"#).is_err());
    }
}
