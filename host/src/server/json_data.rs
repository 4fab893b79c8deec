//! A JSON tensor's `data`, decoded straight into a flat buffer of numbers
//! while its nesting is recorded, so that a large request costs about eight
//! bytes per element (a `serde_json::Value` tree costs ten times that) and
//! data whose nesting disagrees with its shape is caught, not flattened.

use serde::de::{self, DeserializeSeed, Deserializer, SeqAccess, Visitor};
use std::fmt;

/// Integers beyond this lose precision as `f64`; they are kept exactly on
/// the side (rare: only INT64 data uses them).
const EXACT_IN_F64: u64 = 1 << 53;

/// A depth whose arrays have not been seen yet (an empty array has none
/// below it).
const UNSEEN: usize = usize::MAX;

/// The elements of one input's `data`, in row-major order.
#[derive(Debug, Default)]
pub struct JsonData {
    /// Every element as a number.
    pub values: Vec<f64>,
    /// Elements that are integers too large for `f64`: (index, value).
    pub exact: Vec<(usize, i128)>,
    /// The first element that is not a number: (index, what it is).
    pub not_a_number: Option<(usize, &'static str)>,
    /// The first element that is not a string (BYTES data is strings):
    /// (index, what it is).
    pub not_a_string: Option<(usize, &'static str)>,
    /// The first element that is neither true nor false.
    pub not_a_bool: Option<(usize, &'static str)>,
    /// Strings, in element order, when every element so far is one (BYTES
    /// data); numbers and booleans keep their value in `values`.
    pub texts: Vec<String>,
    /// The length of the arrays at each depth (`[2, 32]` for two rows of 32).
    pub nesting: Vec<usize>,
    /// How deep the elements sit (`None`: there are none; `Some(0)`: `data`
    /// is a bare number, not an array).
    pub depth: Option<usize>,
    /// Why the nesting is not a regular array, if it is not.
    pub irregular: Option<String>,
}

impl JsonData {
    /// How many elements there are.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Element `index` as an integer, when it is one.
    pub fn integer(&self, index: usize) -> Option<i128> {
        let value = *self.values.get(index)?;
        if value.is_nan() {
            return self
                .exact
                .binary_search_by_key(&index, |(i, _)| *i)
                .ok()
                .map(|at| self.exact[at].1);
        }
        (value.fract() == 0.0 && value.abs() < 2f64.powi(127)).then_some(value as i128)
    }

    /// Element `index` as a float (an integer kept exactly on the side is
    /// rounded to the nearest `f64`).
    pub fn float(&self, index: usize) -> f64 {
        match self.values.get(index) {
            Some(v) if v.is_nan() => self.integer(index).map_or(*v, |i| i as f64),
            Some(v) => *v,
            None => f64::NAN,
        }
    }

    /// Element `index` as written, for error messages.
    pub fn describe(&self, index: usize) -> String {
        match self.integer(index) {
            Some(v) => v.to_string(),
            None => self
                .values
                .get(index)
                .map_or_else(String::new, |v| v.to_string()),
        }
    }

    fn leaf(&mut self, depth: usize, value: f64) {
        match self.depth {
            None => self.depth = Some(depth),
            Some(d) if d != depth => {
                self.irregular.get_or_insert_with(|| {
                    format!("it mixes values at nesting depths {d} and {depth}")
                });
            }
            Some(_) => {}
        }
        self.values.push(value);
    }

    // Called when an array ends, so inner arrays report before outer ones.
    fn array(&mut self, depth: usize, length: usize) {
        if self.nesting.len() <= depth {
            self.nesting.resize(depth + 1, UNSEEN);
        }
        let seen = self.nesting[depth];
        if seen == UNSEEN {
            self.nesting[depth] = length;
        } else if seen != length {
            self.irregular.get_or_insert_with(|| {
                format!("arrays at nesting depth {depth} have {seen} and {length} elements")
            });
        }
    }
}

impl<'de> serde::Deserialize<'de> for JsonData {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut data = JsonData::default();
        Level {
            depth: 0,
            data: &mut data,
        }
        .deserialize(deserializer)?;
        Ok(data)
    }
}

/// One level of nesting; arrays recurse (serde_json bounds the depth).
struct Level<'a> {
    depth: usize,
    data: &'a mut JsonData,
}

impl<'de> DeserializeSeed<'de> for Level<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Level<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("numbers, in a flat or nested array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut length = 0usize;
        while seq
            .next_element_seed(Level {
                depth: self.depth + 1,
                data: &mut *self.data,
            })?
            .is_some()
        {
            length += 1;
        }
        self.data.array(self.depth, length);
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        let index = self.data.values.len();
        self.data.not_a_string.get_or_insert((index, "a number"));
        self.data
            .not_a_bool
            .get_or_insert((index, "a number other than 0 or 1"));
        self.data.leaf(self.depth, v);
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.integer(i128::from(v));
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.integer(i128::from(v));
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        let index = self.data.values.len();
        self.data
            .not_a_number
            .get_or_insert((index, "true or false"));
        self.data
            .not_a_string
            .get_or_insert((index, "true or false"));
        self.data.leaf(self.depth, f64::from(u8::from(v)));
        Ok(())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        let index = self.data.values.len();
        self.data.not_a_number.get_or_insert((index, "a string"));
        self.data.not_a_bool.get_or_insert((index, "a string"));
        if self.data.not_a_string.is_none() {
            self.data.texts.push(v.to_string());
        }
        self.data.leaf(self.depth, f64::NAN);
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.other("null")
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map
            .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
            .is_some()
        {}
        self.other("an object")
    }
}

impl Level<'_> {
    fn integer(self, v: i128) {
        let index = self.data.values.len();
        self.data.not_a_string.get_or_insert((index, "a number"));
        if v != 0 && v != 1 {
            self.data
                .not_a_bool
                .get_or_insert((index, "a number other than 0 or 1"));
        }
        if v.unsigned_abs() <= u128::from(EXACT_IN_F64) {
            self.data.leaf(self.depth, v as f64);
        } else {
            let index = self.data.values.len();
            self.data.exact.push((index, v));
            self.data.leaf(self.depth, f64::NAN);
        }
    }

    fn other<E: de::Error>(self, what: &'static str) -> Result<(), E> {
        let index = self.data.values.len();
        self.data.not_a_number.get_or_insert((index, what));
        self.data.not_a_string.get_or_insert((index, what));
        self.data.not_a_bool.get_or_insert((index, what));
        self.data.leaf(self.depth, f64::NAN);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> JsonData {
        serde_json::from_str(text).expect("parses")
    }

    #[test]
    fn records_the_nesting_of_a_regular_array() {
        let data = parse("[[1, 2, 3], [4, 5.5, -6]]");
        assert_eq!(data.values, [1.0, 2.0, 3.0, 4.0, 5.5, -6.0]);
        assert_eq!(data.nesting, [2, 3]);
        assert_eq!(data.depth, Some(2));
        assert!(data.irregular.is_none());
    }

    #[test]
    fn ragged_arrays_and_mixed_depths_are_irregular() {
        assert!(parse("[[1, 2], [3]]").irregular.is_some());
        assert!(parse("[[1, 2], 3]").irregular.is_some());
        assert!(parse("[1, [2]]").irregular.is_some());
    }

    #[test]
    fn large_integers_stay_exact_and_non_numbers_are_noted() {
        let data = parse("[9007199254740993, -9223372036854775808, 18446744073709551615, 7]");
        assert_eq!(data.integer(0), Some(9_007_199_254_740_993));
        assert_eq!(data.integer(1), Some(i128::from(i64::MIN)));
        assert_eq!(data.integer(2), Some(i128::from(u64::MAX)));
        assert_eq!(data.integer(3), Some(7));
        assert_eq!(data.float(2), u64::MAX as f64);
        assert_eq!(data.float(3), 7.0);
        let data = parse("[1, true, \"x\"]");
        assert_eq!(data.not_a_number, Some((1, "true or false")));
        assert_eq!(data.not_a_string, Some((0, "a number")));
        assert_eq!(data.not_a_bool, Some((2, "a string")));
        assert_eq!(data.len(), 3);
        let text = parse(r#"[["a", ""], ["é", "\u0000"]]"#);
        assert_eq!(text.texts, ["a", "", "é", "\0"]);
        assert_eq!(
            (text.not_a_string, text.nesting.as_slice()),
            (None, &[2, 2][..])
        );
    }

    #[test]
    fn a_bare_number_sits_at_depth_zero() {
        let data = parse("5");
        assert_eq!(data.depth, Some(0));
        assert!(data.nesting.is_empty());
    }
}
