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
}

impl Dtype {
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
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::Fp16 | Dtype::Bf16 => 2,
            Dtype::Fp32 | Dtype::Int32 => 4,
            Dtype::Fp64 | Dtype::Int64 => 8,
            Dtype::Uint8 => 1,
        }
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

impl From<Dtype> for TensorType {
    fn from(dtype: Dtype) -> Self {
        match dtype {
            Dtype::Fp16 => TensorType::Fp16,
            Dtype::Fp32 => TensorType::Fp32,
            Dtype::Fp64 => TensorType::Fp64,
            Dtype::Bf16 => TensorType::Bf16,
            Dtype::Uint8 => TensorType::U8,
            Dtype::Int32 => TensorType::I32,
            Dtype::Int64 => TensorType::I64,
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
