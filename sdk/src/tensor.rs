//! Tensors: typed construction, typed reads, shape and dtype checks.
//!
//! A [`Tensor`] is either a handle to a host-owned `wasi:nn` tensor (every
//! input the plugin receives, every `compute` output) or a tensor the plugin
//! built itself, which stays in plugin memory until it is returned or passed
//! to [`crate::Graph::compute`]. Moving a host tensor on (returning it, or
//! passing it to `compute`) never copies its data through the plugin.

use crate::bindings::aimass::plugin::tensors as host;
use crate::bindings::wasi::nn::tensor::Tensor as HostTensor;
use crate::error::{Error, Result};
use core::fmt;
use std::sync::OnceLock;

/// The element type of a tensor: `wasi:nn`'s seven, then the ones the
/// Open Inference Protocol adds (`Bool`, the other integers, and `Bytes`,
/// byte strings such as text or an encoded image).
pub use crate::bindings::aimass::plugin::types::Datatype as DType;
use crate::bindings::wasi::nn::tensor::TensorType as NnType;

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DType::Fp16 => "FP16",
            DType::Fp32 => "FP32",
            DType::Fp64 => "FP64",
            DType::Bf16 => "BF16",
            DType::U8 => "U8",
            DType::I32 => "I32",
            DType::I64 => "I64",
            DType::Bool => "BOOL",
            DType::I8 => "I8",
            DType::I16 => "I16",
            DType::U16 => "U16",
            DType::U32 => "U32",
            DType::U64 => "U64",
            DType::Bytes => "BYTES",
        })
    }
}

impl DType {
    /// Bytes per element; `None` for `Bytes`, whose elements have each
    /// their own length.
    pub fn fixed_size(self) -> Option<usize> {
        match self {
            DType::U8 | DType::I8 | DType::Bool => Some(1),
            DType::Fp16 | DType::Bf16 | DType::I16 | DType::U16 => Some(2),
            DType::Fp32 | DType::I32 | DType::U32 => Some(4),
            DType::Fp64 | DType::I64 | DType::U64 => Some(8),
            DType::Bytes => None,
        }
    }

    /// The `wasi:nn` type of the same elements, where `wasi:nn` has one.
    fn wasi_nn(self) -> Option<NnType> {
        Some(match self {
            DType::Fp16 => NnType::Fp16,
            DType::Fp32 => NnType::Fp32,
            DType::Fp64 => NnType::Fp64,
            DType::Bf16 => NnType::Bf16,
            DType::U8 => NnType::U8,
            DType::I32 => NnType::I32,
            DType::I64 => NnType::I64,
            _ => return None,
        })
    }
}

/// Longest `Bytes` element a plugin may build (the host holds the same
/// bound on what it is given).
pub const MAX_ELEMENT_BYTES: usize = 64 << 20;

/// A Rust number type that is a tensor element.
pub trait Element: Copy + sealed::Sealed {
    /// The matching tensor element type.
    const DTYPE: DType;
    /// Appends this value's little-endian bytes.
    fn write_le(self, out: &mut Vec<u8>);
    /// Reads a value from exactly `DTYPE.fixed_size()` little-endian bytes.
    fn read_le(bytes: &[u8]) -> Self;
}

mod sealed {
    pub trait Sealed {}
}

macro_rules! element {
    ($($ty:ty => $dtype:ident),* $(,)?) => {$(
        impl sealed::Sealed for $ty {}
        impl Element for $ty {
            const DTYPE: DType = DType::$dtype;
            fn write_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn read_le(bytes: &[u8]) -> Self {
                let mut raw = [0u8; core::mem::size_of::<$ty>()];
                raw.copy_from_slice(bytes);
                <$ty>::from_le_bytes(raw)
            }
        }
    )*};
}
element!(
    f32 => Fp32, f64 => Fp64, u8 => U8, i32 => I32, i64 => I64,
    i8 => I8, i16 => I16, u16 => U16, u32 => U32, u64 => U64,
);

impl sealed::Sealed for bool {}
impl Element for bool {
    const DTYPE: DType = DType::Bool;
    fn write_le(self, out: &mut Vec<u8>) {
        out.push(u8::from(self));
    }
    fn read_le(bytes: &[u8]) -> Self {
        bytes[0] != 0
    }
}

enum Repr {
    Host {
        handle: HostTensor,
        /// The element type and shape, asked once (they never change); a
        /// `OnceLock` keeps `Tensor` `Sync`, as it was before the cache.
        described: OnceLock<(DType, Vec<u32>)>,
    },
    Local {
        shape: Vec<u32>,
        dtype: DType,
        data: Vec<u8>,
    },
}

/// A tensor, owned by the host or built by the plugin.
pub struct Tensor {
    repr: Repr,
    /// The name it arrived under, for error messages.
    label: Option<String>,
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tensor")
            .field("name", &self.label)
            .field("host", &matches!(self.repr, Repr::Host { .. }))
            .finish_non_exhaustive()
    }
}

impl Tensor {
    /// Builds a tensor from typed values in row-major order.
    ///
    /// ```
    /// use aimass_sdk::{DType, Tensor};
    /// let t = Tensor::new(&[2, 2], &[1.0f32, 2.0, 3.0, 4.0]).unwrap();
    /// assert_eq!(t.shape(), vec![2, 2]);
    /// assert_eq!(t.dtype(), DType::Fp32);
    /// assert!(Tensor::new(&[3], &[1i64, 2]).is_err());
    /// ```
    pub fn new<T: Element>(shape: &[u32], values: &[T]) -> Result<Self> {
        let mut data = Vec::with_capacity(values.len() * T::DTYPE.fixed_size().unwrap_or(1));
        for value in values {
            value.write_le(&mut data);
        }
        Self::from_bytes(shape, T::DTYPE, data)
    }

    /// Builds a tensor of text, one string per element in row-major order.
    ///
    /// ```
    /// use aimass_sdk::{DType, Tensor};
    /// let t = Tensor::from_strings(&[2], &["hello", "文字"]).unwrap();
    /// assert_eq!(t.dtype(), DType::Bytes);
    /// assert_eq!(t.to_strings().unwrap(), vec!["hello", "文字"]);
    /// ```
    pub fn from_strings<S: AsRef<str>>(shape: &[u32], values: &[S]) -> Result<Self> {
        let bytes: Vec<&[u8]> = values.iter().map(|s| s.as_ref().as_bytes()).collect();
        Self::from_byte_strings(shape, &bytes)
    }

    /// Builds a tensor of byte strings (an encoded image, non-UTF-8 text),
    /// one per element in row-major order.
    pub fn from_byte_strings<B: AsRef<[u8]>>(shape: &[u32], values: &[B]) -> Result<Self> {
        let total: usize = values.iter().map(|v| v.as_ref().len() + 4).sum();
        let mut data = Vec::with_capacity(total);
        for (i, value) in values.iter().enumerate() {
            let value = value.as_ref();
            if value.len() > MAX_ELEMENT_BYTES {
                return Err(Error::internal(format!(
                    "element {i} is {} bytes, the most one element may be is {MAX_ELEMENT_BYTES}",
                    value.len()
                )));
            }
            data.extend_from_slice(&(value.len() as u32).to_le_bytes());
            data.extend_from_slice(value);
        }
        Self::from_bytes(shape, DType::Bytes, data)
    }

    /// Builds a tensor from raw little-endian bytes, for element types Rust
    /// has no number type for (FP16, BF16), or from the `Bytes` form (each
    /// element's 4-byte little-endian length, then its bytes).
    pub fn from_bytes(shape: &[u32], dtype: DType, data: Vec<u8>) -> Result<Self> {
        let elements = element_count(shape);
        match dtype.fixed_size() {
            Some(size) if elements.checked_mul(size) != Some(data.len()) => {
                return Err(Error::internal(format!(
                    "a {dtype} tensor of shape {shape:?} needs {elements} elements ({} bytes), got {} bytes",
                    elements.saturating_mul(size),
                    data.len()
                )));
            }
            Some(_) => {}
            None => {
                let found = split_strings(&data)
                    .map_err(|why| Error::internal(format!("a BYTES tensor: {why}")))?
                    .len();
                if found != elements {
                    return Err(Error::internal(format!(
                        "a BYTES tensor of shape {shape:?} needs {elements} elements, its data frames {found}"
                    )));
                }
            }
        }
        Ok(Tensor {
            repr: Repr::Local {
                shape: shape.to_vec(),
                dtype,
                data,
            },
            label: None,
        })
    }

    /// Wraps a host tensor handle.
    pub fn from_host(tensor: HostTensor) -> Self {
        Tensor {
            repr: Repr::Host {
                handle: tensor,
                described: OnceLock::new(),
            },
            label: None,
        }
    }

    /// Brings a host tensor's contents into plugin memory in one host call
    /// and releases its handle; a plugin-built tensor is returned as it is.
    /// For a tensor the plugin reads (shape, type and values) rather than
    /// passes on: every read after this one is free.
    pub fn into_local(self) -> Tensor {
        let repr = match self.repr {
            Repr::Host { handle, .. } => {
                let value = host::take(handle);
                Repr::Local {
                    shape: value.dimensions,
                    dtype: value.ty,
                    data: value.data,
                }
            }
            local @ Repr::Local { .. } => local,
        };
        Tensor {
            repr,
            label: self.label,
        }
    }

    /// The element type and shape; a host tensor is asked once.
    fn meta(&self) -> (DType, &[u32]) {
        match &self.repr {
            Repr::Host { handle, described } => {
                let (dtype, shape) = described.get_or_init(|| host::describe(handle));
                (*dtype, shape)
            }
            Repr::Local { shape, dtype, .. } => (*dtype, shape),
        }
    }

    /// Names the tensor in error messages about it.
    pub fn labelled(mut self, name: impl Into<String>) -> Self {
        self.label = Some(name.into());
        self
    }

    /// The size of each dimension, outermost first.
    pub fn shape(&self) -> Vec<u32> {
        self.meta().1.to_vec()
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.meta().0
    }

    /// The raw little-endian bytes (a copy).
    pub fn bytes(&self) -> Vec<u8> {
        match &self.repr {
            Repr::Host { handle, .. } => handle.data(),
            Repr::Local { data, .. } => data.clone(),
        }
    }

    /// Reads the values, checking that the element type is `T`.
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        self.expect_dtype(T::DTYPE)?;
        match &self.repr {
            Repr::Host { handle, .. } => self.values_from(&handle.data()),
            Repr::Local { data, .. } => self.values_from(data),
        }
    }

    /// Reads the values, checking that the element type is `T`, and
    /// releases the tensor: for a host tensor, one host call instead of
    /// the two [`Tensor::to_vec`] makes (plus the handle's drop).
    ///
    /// ```
    /// use aimass_sdk::Tensor;
    /// let t = Tensor::new(&[2], &[1.5f32, -2.0]).unwrap();
    /// assert_eq!(t.into_vec::<f32>().unwrap(), vec![1.5, -2.0]);
    /// ```
    pub fn into_vec<T: Element>(self) -> Result<Vec<T>> {
        self.into_local().to_vec()
    }

    /// Reads a `Bytes` tensor's elements as text; an element that is not
    /// UTF-8 is the sender's `invalid-input`.
    pub fn to_strings(&self) -> Result<Vec<String>> {
        self.to_byte_strings()?
            .into_iter()
            .enumerate()
            .map(|(i, bytes)| {
                String::from_utf8(bytes).map_err(|_| {
                    Error::invalid_input(format!(
                        "{}: element {i} is not UTF-8 text",
                        self.describe()
                    ))
                })
            })
            .collect()
    }

    /// Reads a `Bytes` tensor's elements as byte strings.
    pub fn to_byte_strings(&self) -> Result<Vec<Vec<u8>>> {
        self.expect_dtype(DType::Bytes)?;
        let data = match &self.repr {
            Repr::Host { handle, .. } => handle.data(),
            Repr::Local { data, .. } => data.clone(),
        };
        self.strings_from(&data)
    }

    /// [`Tensor::to_byte_strings`] in one host call, releasing the tensor.
    pub fn into_byte_strings(self) -> Result<Vec<Vec<u8>>> {
        self.into_local().to_byte_strings()
    }

    /// [`Tensor::to_strings`] in one host call, releasing the tensor.
    pub fn into_strings(self) -> Result<Vec<String>> {
        self.into_local().to_strings()
    }

    fn strings_from(&self, data: &[u8]) -> Result<Vec<Vec<u8>>> {
        let parts = split_strings(data)
            .map_err(|why| Error::invalid_input(format!("{}: {why}", self.describe())))?;
        Ok(parts.into_iter().map(<[u8]>::to_vec).collect())
    }

    fn values_from<T: Element>(&self, bytes: &[u8]) -> Result<Vec<T>> {
        let size = T::DTYPE.fixed_size().unwrap_or(1);
        if !bytes.len().is_multiple_of(size) {
            return Err(Error::invalid_input(format!(
                "{}: {} bytes is not a whole number of {} elements",
                self.describe(),
                bytes.len(),
                T::DTYPE
            )));
        }
        Ok(bytes.chunks_exact(size).map(T::read_le).collect())
    }

    /// Fails with `invalid-input` unless the element type is `dtype`.
    pub fn expect_dtype(&self, dtype: DType) -> Result<()> {
        let actual = self.dtype();
        if actual == dtype {
            Ok(())
        } else {
            Err(Error::invalid_input(format!(
                "{}: expected {dtype} elements, got {actual}",
                self.describe()
            )))
        }
    }

    /// Fails with `invalid-input` unless the shape matches `pattern`, where
    /// `-1` matches any size; returns the actual shape.
    ///
    /// ```
    /// use aimass_sdk::Tensor;
    /// let t = Tensor::new(&[3, 4], &[0f32; 12]).unwrap().labelled("x");
    /// assert_eq!(t.expect_shape(&[-1, 4]).unwrap(), vec![3, 4]);
    /// let err = t.expect_shape(&[-1, 5]).unwrap_err();
    /// assert_eq!(err.message(), "input `x`: expected shape [-1, 5], got [3, 4]");
    /// ```
    pub fn expect_shape(&self, pattern: &[i64]) -> Result<Vec<u32>> {
        let shape = self.shape();
        let fits = shape.len() == pattern.len()
            && shape
                .iter()
                .zip(pattern)
                .all(|(&actual, &wanted)| wanted < 0 || i64::from(actual) == wanted);
        if fits {
            Ok(shape)
        } else {
            Err(Error::invalid_input(format!(
                "{}: expected shape {pattern:?}, got {shape:?}",
                self.describe()
            )))
        }
    }

    /// Turns the tensor into a host handle, handing plugin-built data to the
    /// host once. A host tensor is passed on as it is.
    pub fn into_host(self) -> HostTensor {
        match self.repr {
            Repr::Host { handle, .. } => handle,
            Repr::Local { shape, dtype, data } => match dtype.wasi_nn() {
                Some(ty) => HostTensor::new(&shape, ty, &data),
                None => host::create(dtype, &shape, &data),
            },
        }
    }

    fn describe(&self) -> String {
        match &self.label {
            Some(name) => format!("input `{name}`"),
            None => "tensor".to_string(),
        }
    }
}

/// The elements of the `Bytes` form, or why it is not one.
fn split_strings(mut data: &[u8]) -> core::result::Result<Vec<&[u8]>, String> {
    let mut parts = Vec::new();
    while !data.is_empty() {
        let Some(prefix) = data.get(..4) else {
            return Err(format!(
                "element {}'s 4-byte length is cut off",
                parts.len()
            ));
        };
        let length = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        let Some(element) = data.get(4..4 + length) else {
            return Err(format!(
                "element {} says it is {length} bytes, only {} are left",
                parts.len(),
                data.len() - 4
            ));
        };
        parts.push(element);
        data = &data[4 + length..];
    }
    Ok(parts)
}

/// The number of elements a shape holds (1 for a scalar shape `[]`).
pub fn element_count(shape: &[u32]) -> usize {
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d as usize))
        .unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_element_type() {
        let t = Tensor::new(&[3], &[1.5f64, -2.0, 3.25]).unwrap();
        assert_eq!(t.to_vec::<f64>().unwrap(), vec![1.5, -2.0, 3.25]);
        let t = Tensor::new(&[2], &[i64::MIN, i64::MAX]).unwrap();
        assert_eq!(t.to_vec::<i64>().unwrap(), vec![i64::MIN, i64::MAX]);
        let t = Tensor::new(&[2], &[7u8, 255]).unwrap();
        assert_eq!(t.to_vec::<u8>().unwrap(), vec![7, 255]);
        let t = Tensor::new(&[1], &[-9i32]).unwrap();
        assert_eq!(t.to_vec::<i32>().unwrap(), vec![-9]);
    }

    #[test]
    fn strings_and_byte_strings_round_trip() {
        let t = Tensor::from_byte_strings(&[1, 3], &[&b""[..], b"\xff", "é".as_bytes()]).unwrap();
        assert_eq!(t.dtype(), DType::Bytes);
        assert_eq!(
            t.to_byte_strings().unwrap(),
            vec![vec![], vec![0xff], "é".as_bytes().to_vec()]
        );
        let err = t.labelled("text").to_strings().unwrap_err();
        assert_eq!(err.message(), "input `text`: element 1 is not UTF-8 text");
        assert!(Tensor::from_strings(&[3], &["a", "b"]).is_err());
        assert!(Tensor::from_bytes(&[1], DType::Bytes, vec![9, 0, 0, 0, 1]).is_err());
        let flags = Tensor::new(&[2], &[true, false]).unwrap();
        assert_eq!(flags.to_vec::<bool>().unwrap(), vec![true, false]);
        let wide = Tensor::new(&[1], &[u64::MAX]).unwrap();
        assert_eq!(wide.into_vec::<u64>().unwrap(), vec![u64::MAX]);
    }

    #[test]
    fn a_tensor_can_be_shared_and_sent() {
        fn shared<T: Send + Sync>() {}
        shared::<Tensor>();
    }

    #[test]
    fn wrong_dtype_names_the_input() {
        let t = Tensor::new(&[1], &[1i64]).unwrap().labelled("ids");
        let err = t.to_vec::<f32>().unwrap_err();
        assert_eq!(
            err,
            Error::invalid_input("input `ids`: expected FP32 elements, got I64")
        );
        assert_eq!(t.into_vec::<f32>().unwrap_err(), err);
    }

    #[test]
    fn byte_length_must_match_shape() {
        let err = Tensor::from_bytes(&[2, 2], DType::Fp16, vec![0; 6]).unwrap_err();
        assert!(
            err.message()
                .contains("needs 4 elements (8 bytes), got 6 bytes"),
            "{err:?}"
        );
        assert!(Tensor::from_bytes(&[2, 2], DType::Fp16, vec![0; 8]).is_ok());
        assert!(Tensor::from_bytes(&[u32::MAX, u32::MAX, u32::MAX], DType::U8, vec![]).is_err());
    }
}
