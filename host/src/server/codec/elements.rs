//! Tensor elements as JSON: a request's numbers (flat, or nested exactly as
//! the shape) to little-endian bytes of the declared type, refusing what the
//! type cannot hold; and an answer's bytes back to JSON numbers.

use crate::server::json_data::JsonData;
use crate::server::protocol::OutputData;
use crate::tensor::Dtype;

/// The element type a protocol datatype names.
pub fn dtype(datatype: &str) -> Result<Dtype, String> {
    Dtype::parse(datatype)
}

/// `data` as `count` elements of `dtype` in little-endian bytes; `dims` is
/// the declared shape, which nested data must follow exactly.
pub fn to_bytes(
    dtype: Dtype,
    data: &JsonData,
    dims: &[u32],
    count: usize,
) -> Result<Vec<u8>, String> {
    if dtype == Dtype::Bf16 {
        return Err("BF16 data can only be sent as binary data".into());
    }
    if let Some(why) = &data.irregular {
        return Err(format!("its data is not a regular array: {why}"));
    }
    match data.depth {
        Some(0) => return Err("its data must be an array, not a bare value".into()),
        // Flat, or nested exactly as the shape says.
        Some(1) | None => {}
        Some(_) => {
            let shape: Vec<usize> = dims.iter().map(|&d| d as usize).collect();
            if data.nesting != shape {
                return Err(format!(
                    "its data is nested as {:?} but its shape is {:?}; send the data flat \
                     or nested exactly as the shape",
                    data.nesting, shape
                ));
            }
        }
    }
    if data.len() != count {
        return Err(format!(
            "its shape holds {count} elements but its data has {}",
            data.len()
        ));
    }
    if let Some((index, what)) = data.not_a_number {
        return Err(format!("element {index} is {what}, not a {dtype} value"));
    }
    let wrong = |i: usize| format!("element {i} is {}, not a {dtype} value", data.describe(i));
    let out_of_range = |i: usize| {
        format!(
            "element {i} is {}, outside the range of {dtype}",
            data.describe(i)
        )
    };
    let mut bytes = Vec::with_capacity(count.saturating_mul(dtype.size()));
    for i in 0..data.len() {
        let value = data.float(i);
        match dtype {
            Dtype::Fp32 => {
                let v = value as f32;
                if v.is_infinite() {
                    return Err(out_of_range(i));
                }
                bytes.extend_from_slice(&v.to_le_bytes());
            }
            Dtype::Fp64 => bytes.extend_from_slice(&value.to_le_bytes()),
            Dtype::Fp16 => {
                let v = half::f16::from_f64(value);
                if v.is_infinite() {
                    return Err(out_of_range(i));
                }
                bytes.extend_from_slice(&v.to_le_bytes());
            }
            Dtype::Uint8 => {
                let v = data.integer(i).ok_or_else(|| wrong(i))?;
                bytes.push(u8::try_from(v).map_err(|_| out_of_range(i))?);
            }
            Dtype::Int32 => {
                let v = data.integer(i).ok_or_else(|| wrong(i))?;
                let v = i32::try_from(v).map_err(|_| out_of_range(i))?;
                bytes.extend_from_slice(&v.to_le_bytes());
            }
            Dtype::Int64 => {
                let v = data.integer(i).ok_or_else(|| wrong(i))?;
                let v = i64::try_from(v).map_err(|_| out_of_range(i))?;
                bytes.extend_from_slice(&v.to_le_bytes());
            }
            Dtype::Bf16 => return Err(wrong(i)),
        }
    }
    Ok(bytes)
}

/// Little-endian bytes as JSON numbers of the tensor's own type.
pub fn to_json(dtype: Dtype, data: &[u8]) -> OutputData {
    fn each<const N: usize, T>(data: &[u8], f: fn([u8; N]) -> T) -> Vec<T> {
        data.chunks_exact(N)
            .map(|c| {
                let mut bytes = [0u8; N];
                bytes.copy_from_slice(c);
                f(bytes)
            })
            .collect()
    }
    match dtype {
        Dtype::Fp32 => OutputData::F32(each(data, f32::from_le_bytes)),
        Dtype::Fp16 => OutputData::F32(each(data, |b| half::f16::from_le_bytes(b).to_f32())),
        Dtype::Bf16 => OutputData::F32(each(data, |b| half::bf16::from_le_bytes(b).to_f32())),
        Dtype::Fp64 => OutputData::F64(each(data, f64::from_le_bytes)),
        Dtype::Uint8 => OutputData::U8(data.to_vec()),
        Dtype::Int32 => OutputData::I32(each(data, i32::from_le_bytes)),
        Dtype::Int64 => OutputData::I64(each(data, i64::from_le_bytes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(text: &str) -> JsonData {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn datatypes_are_told_apart_from_unknown_names() {
        assert_eq!(dtype("FP32"), Ok(Dtype::Fp32));
        assert!(
            dtype("BOOL")
                .unwrap_err()
                .contains("not one aimass models take")
        );
        assert!(
            dtype("FP8")
                .unwrap_err()
                .starts_with("unknown datatype `FP8`")
        );
    }

    #[test]
    fn flat_and_nested_data_give_the_same_bytes() {
        let flat = to_bytes(Dtype::Int32, &data("[1, 2, 3, 4]"), &[2, 2], 4).unwrap();
        let nested = to_bytes(Dtype::Int32, &data("[[1, 2], [3, 4]]"), &[2, 2], 4).unwrap();
        assert_eq!(flat, nested);
        assert_eq!(&flat[..4], &1i32.to_le_bytes());
        let wrong = to_bytes(Dtype::Int32, &data("[[1, 2, 3, 4]]"), &[2, 2], 4).unwrap_err();
        assert!(
            wrong.contains("nested as [1, 4] but its shape is [2, 2]"),
            "{wrong}"
        );
    }

    #[test]
    fn values_the_type_cannot_hold_are_refused_not_rounded() {
        let err = |dtype, text: &str| to_bytes(dtype, &data(text), &[1], 1).unwrap_err();
        assert!(err(Dtype::Fp32, "[1e39]").ends_with("outside the range of FP32"));
        assert_eq!(
            err(Dtype::Uint8, "[300]"),
            "element 0 is 300, outside the range of UINT8"
        );
        assert_eq!(
            err(Dtype::Int64, "[1.5]"),
            "element 0 is 1.5, not a INT64 value"
        );
        assert!(err(Dtype::Fp16, "[70000]").contains("outside the range of FP16"));
        assert!(err(Dtype::Bf16, "[1]").contains("only be sent as binary"));
        let count = to_bytes(Dtype::Fp32, &data("[1, 2]"), &[3], 3).unwrap_err();
        assert_eq!(count, "its shape holds 3 elements but its data has 2");
    }

    #[test]
    fn answers_read_back_as_their_own_type() {
        let bytes: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let json = serde_json::to_string(&to_json(Dtype::Fp32, &bytes)).unwrap();
        assert_eq!(json, "[1.5,-2.0]");
        let big = i64::MAX.to_le_bytes();
        let json = serde_json::to_string(&to_json(Dtype::Int64, &big)).unwrap();
        assert_eq!(json, "[9223372036854775807]");
    }
}
