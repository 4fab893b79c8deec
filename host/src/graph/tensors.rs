//! Host tensor helpers the executor needs: rows (first dimension = batch),
//! typed views, and building result tensors.

use super::ExecError;
use crate::runtime::{Dtype, NamedTensor};
use wasmtime_wasi_nn::Tensor;
use wasmtime_wasi_nn::wit::TensorType;

/// The tensor called `name` among `tensors`.
pub fn find<'a>(
    tensors: &'a [NamedTensor],
    name: &str,
    owner: &str,
) -> Result<&'a Tensor, ExecError> {
    tensors
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, t)| t)
        .ok_or_else(|| ExecError::Contract(format!("`{owner}` returned no `{name}`")))
}

/// Rows in a tensor: its first dimension.
pub fn rows(tensor: &Tensor) -> usize {
    tensor.dimensions.first().map_or(0, |&d| d as usize)
}

fn row_bytes(tensor: &Tensor) -> usize {
    tensor.data.len().checked_div(rows(tensor)).unwrap_or(0)
}

/// The given rows of `tensor`, in that order.
pub fn gather(tensor: &Tensor, picked: &[usize], name: &str) -> Result<Tensor, ExecError> {
    let width = row_bytes(tensor);
    let mut data = Vec::with_capacity(width * picked.len());
    for &row in picked {
        let bytes = tensor
            .data
            .get(row * width..(row + 1) * width)
            .ok_or_else(|| {
                ExecError::BadRequest(format!(
                    "input `{name}` has {} rows; every input of a batch needs the same number",
                    rows(tensor)
                ))
            })?;
        data.extend_from_slice(bytes);
    }
    let mut dimensions = tensor.dimensions.clone();
    if let Some(first) = dimensions.first_mut() {
        *first = picked.len() as u32;
    }
    Ok(Tensor::new(dimensions, tensor.ty, data))
}

/// One tensor of `total` rows from parts that each hold some of the rows.
pub fn scatter(
    parts: &[(&[usize], &Tensor)],
    total: usize,
    name: &str,
) -> Result<Tensor, ExecError> {
    let Some((_, first)) = parts.first() else {
        return Err(ExecError::Contract(format!("no stage produced `{name}`")));
    };
    let width = row_bytes(first);
    let mut data = vec![0u8; width * total];
    for (picked, part) in parts {
        if part.ty != first.ty || part.dimensions.get(1..) != first.dimensions.get(1..) {
            return Err(ExecError::Contract(format!(
                "stages disagree on `{name}`: {:?} {:?} vs {:?} {:?}",
                first.ty, first.dimensions, part.ty, part.dimensions
            )));
        }
        if rows(part) != picked.len() {
            return Err(ExecError::Contract(format!(
                "`{name}` has {} rows for {} inputs",
                rows(part),
                picked.len()
            )));
        }
        for (i, &row) in picked.iter().enumerate() {
            let (Some(target), Some(source)) = (
                data.get_mut(row * width..(row + 1) * width),
                part.data.get(i * width..(i + 1) * width),
            ) else {
                return Err(ExecError::Contract(format!(
                    "`{name}` is shorter than its shape says"
                )));
            };
            target.copy_from_slice(source);
        }
    }
    let mut dimensions = first.dimensions.clone();
    if let Some(d) = dimensions.first_mut() {
        *d = total as u32;
    }
    Ok(Tensor::new(dimensions, first.ty, data))
}

/// FP32 values of `tensor`, checked.
pub fn f32s(tensor: &Tensor, what: &str) -> Result<Vec<f32>, ExecError> {
    if tensor.ty != TensorType::Fp32 {
        return Err(ExecError::Contract(format!(
            "{what} must be FP32, got {}",
            Dtype::from(tensor.ty)
        )));
    }
    Ok(tensor
        .data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// INT64 values of `tensor`, checked.
pub fn i64s(tensor: &Tensor, what: &str) -> Result<Vec<i64>, ExecError> {
    if tensor.ty != TensorType::I64 {
        return Err(ExecError::Contract(format!(
            "{what} must be INT64, got {}",
            Dtype::from(tensor.ty)
        )));
    }
    Ok(tensor
        .data
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
        .collect())
}

/// Any numeric tensor's values as f64 (for predicates).
pub fn f64s(tensor: &Tensor) -> Vec<f64> {
    let data = &tensor.data;
    match tensor.ty {
        TensorType::Fp16 => data
            .chunks_exact(2)
            .map(|b| f64::from(half::f16::from_le_bytes([b[0], b[1]])))
            .collect(),
        TensorType::Bf16 => data
            .chunks_exact(2)
            .map(|b| f64::from(half::bf16::from_le_bytes([b[0], b[1]])))
            .collect(),
        TensorType::Fp32 => data
            .chunks_exact(4)
            .map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
            .collect(),
        TensorType::Fp64 => data
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
            .collect(),
        TensorType::U8 => data.iter().map(|&b| f64::from(b)).collect(),
        TensorType::I32 => data
            .chunks_exact(4)
            .map(|b| f64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])))
            .collect(),
        TensorType::I64 => data
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f64)
            .collect(),
    }
}

/// An FP32 tensor.
pub fn f32_tensor(dimensions: Vec<u32>, values: &[f32]) -> Tensor {
    Tensor::new(
        dimensions,
        TensorType::Fp32,
        values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    )
}

/// An INT64 tensor.
pub fn i64_tensor(dimensions: Vec<u32>, values: &[i64]) -> Tensor {
    Tensor::new(
        dimensions,
        TensorType::I64,
        values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    )
}

/// Index of the largest value (the first on ties).
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = i;
        }
    }
    best
}
