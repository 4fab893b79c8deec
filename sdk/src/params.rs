//! The operator's per-node parameters, with typed getters that name the key
//! in every error.

use crate::error::{Error, Result};

pub use crate::bindings::aimass::plugin::types::ParamValue;

/// The parameters `init` receives.
///
/// ```
/// use aimass_sdk::{ParamValue, Params};
/// let params = Params::new()
///     .with("graph", ParamValue::Text("digits".into()))
///     .with("top-k", ParamValue::Integer(3));
/// params.deny_unknown(&["graph", "top-k", "temperature"]).unwrap();
/// assert_eq!(params.require::<String>("graph").unwrap(), "digits");
/// assert_eq!(params.get::<u32>("top-k").unwrap(), Some(3));
/// assert_eq!(params.get_or("temperature", 1.0f32).unwrap(), 1.0);
/// assert!(params.require::<f64>("graph").is_err());
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params {
    entries: Vec<(String, ParamValue)>,
}

impl Params {
    /// No parameters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a parameter, builder style (handy in tests).
    pub fn with(mut self, key: impl Into<String>, value: ParamValue) -> Self {
        self.entries.push((key.into(), value));
        self
    }

    /// The raw value under `key`.
    pub fn raw(&self, key: &str) -> Option<&ParamValue> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The keys, in the order given.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    /// The value under `key` as a `T`, or `None` when absent.
    pub fn get<T: FromParam>(&self, key: &str) -> Result<Option<T>> {
        match self.raw(key) {
            None => Ok(None),
            Some(value) => T::from_param(value).map(Some).ok_or_else(|| {
                Error::invalid_input(format!(
                    "parameter `{key}`: expected {}, got {}",
                    T::EXPECTED,
                    describe(value)
                ))
            }),
        }
    }

    /// The value under `key` as a `T`, or `default` when absent.
    pub fn get_or<T: FromParam>(&self, key: &str, default: T) -> Result<T> {
        Ok(self.get(key)?.unwrap_or(default))
    }

    /// The value under `key` as a `T`; absence is an error.
    pub fn require<T: FromParam>(&self, key: &str) -> Result<T> {
        self.get(key)?.ok_or_else(|| {
            Error::invalid_input(format!("parameter `{key}` is required ({})", T::EXPECTED))
        })
    }

    /// Fails on any key not in `known`, so a misspelt parameter is caught at
    /// start-up instead of silently ignored.
    pub fn deny_unknown(&self, known: &[&str]) -> Result<()> {
        match self.keys().find(|k| !known.contains(k)) {
            None => Ok(()),
            Some(unknown) => Err(Error::invalid_input(format!(
                "unknown parameter `{unknown}`; this plugin takes: [{}]",
                known.join(", ")
            ))),
        }
    }
}

impl From<Vec<(String, ParamValue)>> for Params {
    fn from(entries: Vec<(String, ParamValue)>) -> Self {
        Params { entries }
    }
}

fn describe(value: &ParamValue) -> String {
    match value {
        ParamValue::Text(s) => format!("text {s:?}"),
        ParamValue::Integer(i) => format!("integer {i}"),
        ParamValue::Number(n) => format!("number {n}"),
        ParamValue::Flag(b) => format!("flag {b}"),
        ParamValue::Texts(v) => format!("a list of {} texts", v.len()),
        ParamValue::Numbers(v) => format!("a list of {} numbers", v.len()),
    }
}

/// A Rust type a parameter value converts to.
pub trait FromParam: Sized {
    /// What the value must be, for error messages.
    const EXPECTED: &'static str;
    /// The converted value, or `None` when the value has another type or is
    /// out of range.
    fn from_param(value: &ParamValue) -> Option<Self>;
}

impl FromParam for String {
    const EXPECTED: &'static str = "text";
    fn from_param(value: &ParamValue) -> Option<Self> {
        match value {
            ParamValue::Text(s) => Some(s.clone()),
            _ => None,
        }
    }
}

impl FromParam for bool {
    const EXPECTED: &'static str = "a flag (true or false)";
    fn from_param(value: &ParamValue) -> Option<Self> {
        match value {
            ParamValue::Flag(b) => Some(*b),
            _ => None,
        }
    }
}

impl FromParam for f64 {
    const EXPECTED: &'static str = "a number";
    fn from_param(value: &ParamValue) -> Option<Self> {
        match value {
            ParamValue::Number(n) => Some(*n),
            ParamValue::Integer(i) => Some(*i as f64),
            _ => None,
        }
    }
}

impl FromParam for f32 {
    const EXPECTED: &'static str = "a number";
    fn from_param(value: &ParamValue) -> Option<Self> {
        f64::from_param(value).map(|n| n as f32)
    }
}

impl FromParam for i64 {
    const EXPECTED: &'static str = "an integer";
    fn from_param(value: &ParamValue) -> Option<Self> {
        match value {
            ParamValue::Integer(i) => Some(*i),
            _ => None,
        }
    }
}

impl FromParam for u32 {
    const EXPECTED: &'static str = "a whole number from 0 to 4294967295";
    fn from_param(value: &ParamValue) -> Option<Self> {
        i64::from_param(value).and_then(|i| u32::try_from(i).ok())
    }
}

impl FromParam for u64 {
    const EXPECTED: &'static str = "a whole number of 0 or more";
    fn from_param(value: &ParamValue) -> Option<Self> {
        i64::from_param(value).and_then(|i| u64::try_from(i).ok())
    }
}

impl FromParam for usize {
    const EXPECTED: &'static str = "a whole number of 0 or more";
    fn from_param(value: &ParamValue) -> Option<Self> {
        i64::from_param(value).and_then(|i| usize::try_from(i).ok())
    }
}

impl FromParam for Vec<String> {
    const EXPECTED: &'static str = "a list of texts";
    fn from_param(value: &ParamValue) -> Option<Self> {
        match value {
            ParamValue::Texts(v) => Some(v.clone()),
            _ => None,
        }
    }
}

impl FromParam for Vec<f64> {
    const EXPECTED: &'static str = "a list of numbers";
    fn from_param(value: &ParamValue) -> Option<Self> {
        match value {
            ParamValue::Numbers(v) => Some(v.clone()),
            _ => None,
        }
    }
}

impl FromParam for Vec<f32> {
    const EXPECTED: &'static str = "a list of numbers";
    fn from_param(value: &ParamValue) -> Option<Self> {
        Vec::<f64>::from_param(value).map(|v| v.into_iter().map(|n| n as f32).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_key_and_the_types() {
        let p = Params::new()
            .with("k", ParamValue::Integer(-1))
            .with("s", ParamValue::Text("x".into()));
        assert_eq!(
            p.get::<u32>("k").unwrap_err().message(),
            "parameter `k`: expected a whole number from 0 to 4294967295, got integer -1"
        );
        assert_eq!(
            p.require::<Vec<String>>("labels").unwrap_err().message(),
            "parameter `labels` is required (a list of texts)"
        );
        assert_eq!(
            p.deny_unknown(&["k"]).unwrap_err().message(),
            "unknown parameter `s`; this plugin takes: [k]"
        );
        assert_eq!(p.get::<f64>("k").unwrap(), Some(-1.0));
    }
}
