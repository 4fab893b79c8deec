//! Element types and tensor specs, named as the Open Inference Protocol
//! names them.

use std::fmt;
use wasmtime_wasi_nn::wit::TensorType;

/// A tensor element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dtype {
    /// IEEE half precision.
    Fp16,
    /// IEEE single precision.
    Fp32,
    /// IEEE double precision.
    Fp64,
    /// bfloat16.
    Bf16,
    /// Unsigned byte.
    Uint8,
    /// 32-bit signed integer.
    Int32,
    /// 64-bit signed integer.
    Int64,
    /// Boolean, one byte each (0 or 1).
    Bool,
    /// 8-bit signed integer.
    Int8,
    /// 16-bit signed integer.
    Int16,
    /// 16-bit unsigned integer.
    Uint16,
    /// 32-bit unsigned integer.
    Uint32,
    /// 64-bit unsigned integer.
    Uint64,
    /// Byte strings of any length (text, an encoded image): each element is
    /// held as the protocol's binary form, a 4-byte little-endian length
    /// then its bytes.
    Bytes,
}

/// A request's shape as dimensions, or why not: every front end gives
/// the same message.
pub fn dims_of(shape: &[i64]) -> Result<Vec<u32>, String> {
    shape
        .iter()
        .map(|&d| {
            u32::try_from(d).map_err(|_| {
                format!(
                    "dimension {d} of shape {shape:?} is not a size of 0..={}",
                    u32::MAX
                )
            })
        })
        .collect()
}

/// Every datatype the protocol names.
pub const ALL: [Dtype; 14] = [
    Dtype::Bool,
    Dtype::Uint8,
    Dtype::Uint16,
    Dtype::Uint32,
    Dtype::Uint64,
    Dtype::Int8,
    Dtype::Int16,
    Dtype::Int32,
    Dtype::Int64,
    Dtype::Fp16,
    Dtype::Fp32,
    Dtype::Fp64,
    Dtype::Bf16,
    Dtype::Bytes,
];

impl Dtype {
    /// The element type a protocol datatype names (`FP32`), or why not:
    /// every front end gives the same message.
    pub fn parse(datatype: &str) -> Result<Dtype, String> {
        if let Some(dtype) = ALL.iter().find(|d| d.name() == datatype) {
            return Ok(*dtype);
        }
        let names: Vec<&str> = ALL.iter().map(|d| d.name()).collect();
        Err(format!(
            "unknown datatype `{datatype:.64}` (the protocol's are {})",
            names.join(", ")
        ))
    }

    /// The protocol's name, e.g. `FP32`.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::Fp16 => "FP16",
            Dtype::Fp32 => "FP32",
            Dtype::Fp64 => "FP64",
            Dtype::Bf16 => "BF16",
            Dtype::Uint8 => "UINT8",
            Dtype::Int32 => "INT32",
            Dtype::Int64 => "INT64",
            Dtype::Bool => "BOOL",
            Dtype::Int8 => "INT8",
            Dtype::Int16 => "INT16",
            Dtype::Uint16 => "UINT16",
            Dtype::Uint32 => "UINT32",
            Dtype::Uint64 => "UINT64",
            Dtype::Bytes => "BYTES",
        }
    }

    /// Bytes per element; `None` for BYTES, whose elements have each their
    /// own length.
    pub fn fixed_size(self) -> Option<usize> {
        match self {
            Dtype::Bool | Dtype::Uint8 | Dtype::Int8 => Some(1),
            Dtype::Fp16 | Dtype::Bf16 | Dtype::Int16 | Dtype::Uint16 => Some(2),
            Dtype::Fp32 | Dtype::Int32 | Dtype::Uint32 => Some(4),
            Dtype::Fp64 | Dtype::Int64 | Dtype::Uint64 => Some(8),
            Dtype::Bytes => None,
        }
    }

    /// The `wasi:nn` tensor type of the same elements, where `wasi:nn` has
    /// one (native backends take only these).
    pub fn wasi_nn(self) -> Option<TensorType> {
        Some(match self {
            Dtype::Fp16 => TensorType::Fp16,
            Dtype::Fp32 => TensorType::Fp32,
            Dtype::Fp64 => TensorType::Fp64,
            Dtype::Bf16 => TensorType::Bf16,
            Dtype::Uint8 => TensorType::U8,
            Dtype::Int32 => TensorType::I32,
            Dtype::Int64 => TensorType::I64,
            _ => return None,
        })
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl From<TensorType> for Dtype {
    fn from(ty: TensorType) -> Self {
        match ty {
            TensorType::Fp16 => Dtype::Fp16,
            TensorType::Fp32 => Dtype::Fp32,
            TensorType::Fp64 => Dtype::Fp64,
            TensorType::Bf16 => Dtype::Bf16,
            TensorType::U8 => Dtype::Uint8,
            TensorType::I32 => Dtype::Int32,
            TensorType::I64 => Dtype::Int64,
        }
    }
}

/// One input or output: name, element type, shape (`-1` = dynamic).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    /// The tensor's name.
    pub name: String,
    /// Its element type.
    pub dtype: Dtype,
    /// Its shape; `-1` marks a dynamic dimension.
    pub shape: Vec<i64>,
}

impl TensorSpec {
    /// True when the leading dimension is dynamic: the tensor carries a batch.
    pub fn is_batched(&self) -> bool {
        self.shape.first().is_some_and(|&d| d < 0)
    }
}

/// `[-1, 64]` written as `[N, 64]`, the way an error reads best.
pub fn shape_text(shape: &[i64]) -> String {
    let dims: Vec<String> = shape
        .iter()
        .map(|&d| {
            if d < 0 {
                "N".to_string()
            } else {
                d.to_string()
            }
        })
        .collect();
    format!("[{}]", dims.join(", "))
}
