//! The one check of a tensor's type and shape against a spec, used by the
//! codec (a client's input), the graph build (one model's output feeding
//! another's input) and the backends (a plugin's input to native code).

use super::dtype::{Dtype, TensorSpec, shape_text};
use std::fmt;

/// How a tensor differs from its spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// Another element type.
    Dtype {
        /// The spec's.
        want: Dtype,
        /// The tensor's.
        got: Dtype,
    },
    /// Another rank or a fixed dimension that differs.
    Shape {
        /// The spec's (`-1` dynamic).
        want: Vec<i64>,
        /// The tensor's.
        got: Vec<i64>,
    },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Dtype { want, got } => write!(f, "must be {want}, got {got}"),
            Mismatch::Shape { want, got } => {
                write!(f, "must have shape {}, got {got:?}", shape_text(want))
            }
        }
    }
}

/// Checks `dtype` and `shape` against `spec`. A negative dimension on
/// either side is dynamic and matches any size: specs are checked against
/// specs with the same rule as tensors against specs.
pub fn check(spec: &TensorSpec, dtype: Dtype, shape: &[i64]) -> Result<(), Mismatch> {
    if dtype != spec.dtype {
        return Err(Mismatch::Dtype {
            want: spec.dtype,
            got: dtype,
        });
    }
    let fits = shape.len() == spec.shape.len()
        && shape
            .iter()
            .zip(&spec.shape)
            .all(|(&got, &want)| got < 0 || want < 0 || got == want);
    if fits {
        Ok(())
    } else {
        Err(Mismatch::Shape {
            want: spec.shape.clone(),
            got: shape.to_vec(),
        })
    }
}

/// Checks a tensor's dimensions (never dynamic) against `spec`.
pub fn check_dims(spec: &TensorSpec, dtype: Dtype, dims: &[u32]) -> Result<(), Mismatch> {
    let shape: Vec<i64> = dims.iter().map(|&d| i64::from(d)).collect();
    check(spec, dtype, &shape)
}

/// True when what `producer` gives can feed what `consumer` takes.
pub fn compatible(producer: &TensorSpec, consumer: &TensorSpec) -> bool {
    check(consumer, producer.dtype, &producer.shape).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(shape: &[i64]) -> TensorSpec {
        TensorSpec {
            name: "x".into(),
            dtype: Dtype::Fp32,
            shape: shape.to_vec(),
        }
    }

    #[test]
    fn dynamic_dimensions_match_any_size_on_either_side() {
        assert_eq!(check_dims(&spec(&[-1, 2]), Dtype::Fp32, &[7, 2]), Ok(()));
        assert!(compatible(&spec(&[-1, 2]), &spec(&[3, -1])));
        assert!(!compatible(&spec(&[-1, 2]), &spec(&[-1, 3])));
    }

    #[test]
    fn each_mismatch_says_what_was_wanted() {
        let wrong_type = check_dims(&spec(&[-1, 2]), Dtype::Int64, &[1, 2]).unwrap_err();
        assert_eq!(wrong_type.to_string(), "must be FP32, got INT64");
        let wrong_shape = check_dims(&spec(&[-1, 2]), Dtype::Fp32, &[1, 3]).unwrap_err();
        assert_eq!(
            wrong_shape.to_string(),
            "must have shape [N, 2], got [1, 3]"
        );
        let wrong_rank = check_dims(&spec(&[-1, 2]), Dtype::Fp32, &[2]).unwrap_err();
        assert_eq!(wrong_rank.to_string(), "must have shape [N, 2], got [2]");
    }
}
