//! The host's one tensor type, from a decoded request to the plugin
//! boundary and back: an element type, dimensions and reference-counted
//! bytes, so that handing one tensor to several models (ensemble members,
//! DAG edges, cascade stages) shares it instead of copying it.
//!
//! A [`Tensor`]'s bytes always match its dimensions: every constructor
//! checks, so no layer above has to.

mod check;
mod dtype;
mod rows;
mod signature;
pub mod strings;

pub use check::{Mismatch, check, check_dims, compatible};
pub use dtype::{ALL as ALL_DTYPES, Dtype, TensorSpec, dims_of, shape_text};
pub use rows::{concat, scatter};
pub use signature::Signature;

use bytes::Bytes;

/// A tensor with its name.
pub type NamedTensor = (String, Tensor);

/// Why a tensor cannot be made or reshaped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TensorError {
    /// The bytes do not fill the dimensions exactly.
    #[error("dimensions {dims:?} of {dtype} need {} bytes, but {bytes} were given", need.map_or_else(|| "more than memory can hold".to_string(), |n| n.to_string()))]
    Length {
        /// The element type.
        dtype: Dtype,
        /// The dimensions.
        dims: Vec<u32>,
        /// Bytes they need, `None` past `usize`.
        need: Option<usize>,
        /// Bytes given.
        bytes: usize,
    },
    /// A row operation on tensors that do not line up.
    #[error("{0}")]
    Rows(String),
    /// BYTES data whose length prefixes do not hold the shape's elements.
    #[error("BYTES data: {0}")]
    Framing(String),
    /// A tensor of a type native backends do not take.
    #[error(
        "{0} tensors cannot go to a wasi:nn backend (it takes FP16, FP32, FP64, BF16, UINT8, INT32, INT64)"
    )]
    NotNative(Dtype),
    /// A typed view of another element type.
    #[error("must be {want}, got {got}")]
    Dtype {
        /// The type asked for.
        want: Dtype,
        /// The tensor's.
        got: Dtype,
    },
}

/// A host tensor; cloning it shares its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tensor {
    dtype: Dtype,
    dims: Vec<u32>,
    data: Bytes,
}

/// Each `N`-byte little-endian element of `data`, read by `f`.
pub fn each<const N: usize, T>(data: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
    data.chunks_exact(N)
        .map(|c| {
            let mut bytes = [0u8; N];
            bytes.copy_from_slice(c);
            f(bytes)
        })
        .collect()
}

/// Bytes a tensor of `dims` and `dtype` must hold, `None` past `usize` or
/// for BYTES (whose elements have each their own length).
pub fn byte_length(dtype: Dtype, dims: &[u32]) -> Option<usize> {
    dims.iter()
        .try_fold(dtype.fixed_size()?, |acc, &d| acc.checked_mul(d as usize))
}

/// Elements a tensor of `dims` holds, `None` past `usize`.
pub fn element_count(dims: &[u32]) -> Option<usize> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d as usize))
}

impl Tensor {
    /// A tensor of `dims` holding `data`, which must fill them exactly.
    pub fn new(
        dtype: Dtype,
        dims: Vec<u32>,
        data: impl Into<Bytes>,
    ) -> Result<Tensor, TensorError> {
        let data = data.into();
        if dtype == Dtype::Bytes {
            let count = element_count(&dims).ok_or(TensorError::Length {
                dtype,
                dims: dims.clone(),
                need: None,
                bytes: data.len(),
            })?;
            strings::offsets(&data, count)?;
            return Ok(Tensor { dtype, dims, data });
        }
        let need = byte_length(dtype, &dims);
        if need != Some(data.len()) {
            return Err(TensorError::Length {
                dtype,
                dims,
                need,
                bytes: data.len(),
            });
        }
        Ok(Tensor { dtype, dims, data })
    }

    /// An FP32 tensor of `dims` from values.
    pub fn from_f32(dims: Vec<u32>, values: &[f32]) -> Result<Tensor, TensorError> {
        let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Tensor::new(Dtype::Fp32, dims, data)
    }

    /// An INT64 tensor of `dims` from values.
    pub fn from_i64(dims: Vec<u32>, values: &[i64]) -> Result<Tensor, TensorError> {
        let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Tensor::new(Dtype::Int64, dims, data)
    }

    /// A BYTES tensor of `dims` holding `elements`.
    pub fn from_strings<E: AsRef<[u8]>>(
        dims: Vec<u32>,
        elements: &[E],
    ) -> Result<Tensor, TensorError> {
        Tensor::new(Dtype::Bytes, dims, strings::encode(elements)?)
    }

    /// A BYTES tensor's elements in order (empty for any other type).
    pub fn strings(&self) -> Vec<&[u8]> {
        if self.dtype == Dtype::Bytes {
            strings::elements(&self.data).collect()
        } else {
            Vec::new()
        }
    }

    /// Elements held.
    pub fn element_count(&self) -> usize {
        element_count(&self.dims).unwrap_or(0)
    }

    /// Its element type.
    pub fn dtype(&self) -> Dtype {
        self.dtype
    }

    /// Its dimensions.
    pub fn dims(&self) -> &[u32] {
        &self.dims
    }

    /// Its little-endian bytes.
    pub fn data(&self) -> &Bytes {
        &self.data
    }

    /// Its bytes, moved out (no copy when no one else shares them).
    pub fn into_data(self) -> Bytes {
        self.data
    }

    /// Bytes held.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when it holds no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Rows: the first dimension (a scalar has none).
    pub fn rows(&self) -> usize {
        self.dims.first().map_or(0, |&d| d as usize)
    }

    /// FP32 values.
    pub fn f32s(&self) -> Result<Vec<f32>, TensorError> {
        self.expect(Dtype::Fp32)?;
        Ok(self
            .data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }

    /// INT64 values.
    pub fn i64s(&self) -> Result<Vec<i64>, TensorError> {
        self.expect(Dtype::Int64)?;
        Ok(self
            .data
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
            .collect())
    }

    /// Any numeric tensor's values as f64 (for predicates); a BYTES
    /// element is its length in bytes.
    pub fn f64s(&self) -> Vec<f64> {
        let data = &self.data;
        match self.dtype {
            Dtype::Bool => data.iter().map(|&b| f64::from(u8::from(b != 0))).collect(),
            Dtype::Int8 => data.iter().map(|&b| f64::from(b as i8)).collect(),
            Dtype::Int16 => each(data, |b| f64::from(i16::from_le_bytes(b))),
            Dtype::Uint16 => each(data, |b| f64::from(u16::from_le_bytes(b))),
            Dtype::Uint32 => each(data, |b| f64::from(u32::from_le_bytes(b))),
            Dtype::Uint64 => each(data, |b| u64::from_le_bytes(b) as f64),
            Dtype::Bytes => strings::elements(data).map(|e| e.len() as f64).collect(),
            Dtype::Fp16 => each(data, |b| f64::from(half::f16::from_le_bytes(b))),
            Dtype::Bf16 => each(data, |b| f64::from(half::bf16::from_le_bytes(b))),
            Dtype::Fp32 => each(data, |b| f64::from(f32::from_le_bytes(b))),
            Dtype::Fp64 => each(data, f64::from_le_bytes),
            Dtype::Uint8 => data.iter().map(|&b| f64::from(b)).collect(),
            Dtype::Int32 => each(data, |b| f64::from(i32::from_le_bytes(b))),
            Dtype::Int64 => each(data, |b| i64::from_le_bytes(b) as f64),
        }
    }

    fn expect(&self, want: Dtype) -> Result<(), TensorError> {
        if self.dtype == want {
            Ok(())
        } else {
            Err(TensorError::Dtype {
                want,
                got: self.dtype,
            })
        }
    }

    /// As `wasmtime-wasi-nn`'s tensor, for a backend (no copy when no one
    /// else shares the bytes), where `wasi:nn` has its element type.
    pub fn into_backend(self) -> Result<wasmtime_wasi_nn::Tensor, TensorError> {
        let ty = self
            .dtype
            .wasi_nn()
            .ok_or(TensorError::NotNative(self.dtype))?;
        Ok(wasmtime_wasi_nn::Tensor::new(
            self.dims,
            ty,
            Vec::from(self.data),
        ))
    }

    /// From a backend's tensor, checked.
    pub fn from_backend(tensor: wasmtime_wasi_nn::Tensor) -> Result<Tensor, TensorError> {
        Tensor::new(tensor.ty.into(), tensor.dimensions, tensor.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_must_fill_the_dimensions() {
        let err = Tensor::new(Dtype::Fp32, vec![2, 3], vec![0u8; 20]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "dimensions [2, 3] of FP32 need 24 bytes, but 20 were given"
        );
        let huge = Tensor::new(Dtype::Fp32, vec![u32::MAX; 3], Vec::new()).unwrap_err();
        assert!(
            huge.to_string().contains("more than memory can hold"),
            "{huge}"
        );
        assert_eq!(
            Tensor::new(Dtype::Int64, vec![], vec![0u8; 8])
                .unwrap()
                .rows(),
            0
        );
    }

    #[test]
    fn bytes_tensors_check_their_framing_against_the_shape() {
        let t = Tensor::from_strings(vec![2, 1], &["ab", ""]).unwrap();
        assert_eq!(t.strings(), [&b"ab"[..], &b""[..]]);
        assert_eq!(t.element_count(), 2);
        let short = Tensor::new(Dtype::Bytes, vec![3], t.data().clone()).unwrap_err();
        assert!(
            short.to_string().starts_with("BYTES data: element 2 of 3"),
            "{short}"
        );
        assert!(matches!(
            t.clone().into_backend(),
            Err(TensorError::NotNative(Dtype::Bytes))
        ));
        let flags = Tensor::new(Dtype::Bool, vec![2], vec![0u8, 1]).unwrap();
        assert_eq!(flags.f64s(), [0.0, 1.0]);
    }

    #[test]
    fn clones_share_their_bytes() {
        let t = Tensor::from_f32(vec![1, 2], &[1.0, 2.0]).unwrap();
        let copy = t.clone();
        assert_eq!(t.data().as_ptr(), copy.data().as_ptr());
        assert_eq!(copy.f32s().unwrap(), [1.0, 2.0]);
        assert_eq!(t.i64s().unwrap_err().to_string(), "must be INT64, got FP32");
    }

    #[test]
    fn backend_round_trip_keeps_type_and_shape() {
        let t = Tensor::from_i64(vec![3], &[1, -2, 3]).unwrap();
        let back = Tensor::from_backend(t.clone().into_backend().unwrap()).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.f64s(), [1.0, -2.0, 3.0]);
    }
}
