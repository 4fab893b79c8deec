//! Tensor elements as JSON: a request's numbers (flat, or nested exactly as
//! the shape) to little-endian bytes of the declared type, refusing what the
//! type cannot hold; and an answer's bytes back to JSON numbers.

use crate::server::json_data::JsonData;
use crate::server::protocol::OutputData;
use crate::tensor::{Dtype, each, strings};

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
    match dtype {
        Dtype::Bytes => {
            if let Some((index, what)) = data.not_a_string {
                return Err(format!(
                    "element {index} is {what}, not a string (BYTES data is strings)"
                ));
            }
            return strings::encode(&data.texts).map_err(|e| e.to_string());
        }
        Dtype::Bool => {
            if let Some((index, what)) = data.not_a_bool {
                return Err(format!("element {index} is {what}, not true or false"));
            }
            return Ok(data.values.iter().map(|&v| u8::from(v != 0.0)).collect());
        }
        _ => {}
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
    let mut bytes = Vec::with_capacity(count.saturating_mul(dtype.fixed_size().unwrap_or(1)));
    macro_rules! integer {
        ($ty:ty, $i:expr) => {{
            let v = data.integer($i).ok_or_else(|| wrong($i))?;
            let v = <$ty>::try_from(v).map_err(|_| out_of_range($i))?;
            bytes.extend_from_slice(&v.to_le_bytes());
        }};
    }
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
            Dtype::Uint8 => integer!(u8, i),
            Dtype::Int32 => integer!(i32, i),
            Dtype::Int64 => integer!(i64, i),
            Dtype::Int8 => integer!(i8, i),
            Dtype::Int16 => integer!(i16, i),
            Dtype::Uint16 => integer!(u16, i),
            Dtype::Uint32 => integer!(u32, i),
            Dtype::Uint64 => integer!(u64, i),
            Dtype::Bf16 | Dtype::Bool | Dtype::Bytes => return Err(wrong(i)),
        }
    }
    Ok(bytes)
}

/// True when the tensor has a JSON form: BF16 has none in the protocol, a
/// BYTES element that is not UTF-8 cannot be a JSON string, and JSON has no
/// NaN or infinity (serde writes `null`, which no client reads as a
/// number). Without one, the output goes in binary, exact, as over gRPC.
pub fn has_json_form(dtype: Dtype, data: &[u8]) -> bool {
    fn all_finite<const N: usize>(data: &[u8], finite: impl Fn([u8; N]) -> bool) -> bool {
        data.chunks_exact(N)
            .all(|c| c.try_into().is_ok_and(&finite))
    }
    match dtype {
        Dtype::Bf16 => false,
        Dtype::Bytes => strings::elements(data).all(|e| std::str::from_utf8(e).is_ok()),
        Dtype::Fp32 => all_finite(data, |b| f32::from_le_bytes(b).is_finite()),
        Dtype::Fp16 => all_finite(data, |b| half::f16::from_le_bytes(b).is_finite()),
        Dtype::Fp64 => all_finite(data, |b| f64::from_le_bytes(b).is_finite()),
        _ => true,
    }
}

/// Little-endian bytes as JSON values of the tensor's own type (BYTES as
/// strings: see [`has_json_form`]).
pub fn to_json(dtype: Dtype, data: &[u8]) -> OutputData {
    match dtype {
        Dtype::Fp32 => OutputData::F32(each(data, f32::from_le_bytes)),
        Dtype::Fp16 => OutputData::F32(each(data, |b| half::f16::from_le_bytes(b).to_f32())),
        Dtype::Bf16 => OutputData::F32(each(data, |b| half::bf16::from_le_bytes(b).to_f32())),
        Dtype::Fp64 => OutputData::F64(each(data, f64::from_le_bytes)),
        Dtype::Uint8 => OutputData::U8(data.to_vec()),
        Dtype::Int32 => OutputData::I32(each(data, i32::from_le_bytes)),
        Dtype::Int64 => OutputData::I64(each(data, i64::from_le_bytes)),
        Dtype::Bool => OutputData::Bool(data.iter().map(|&b| b != 0).collect()),
        Dtype::Int8 => OutputData::I64(data.iter().map(|&b| i64::from(b as i8)).collect()),
        Dtype::Int16 => OutputData::I64(each(data, |b| i64::from(i16::from_le_bytes(b)))),
        Dtype::Uint16 => OutputData::I64(each(data, |b| i64::from(u16::from_le_bytes(b)))),
        Dtype::Uint32 => OutputData::I64(each(data, |b| i64::from(u32::from_le_bytes(b)))),
        Dtype::Uint64 => OutputData::U64(each(data, u64::from_le_bytes)),
        Dtype::Bytes => OutputData::Text(
            strings::elements(data)
                .map(|e| String::from_utf8_lossy(e).into_owned())
                .collect(),
        ),
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
        assert_eq!(dtype("BYTES"), Ok(Dtype::Bytes));
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
    fn strings_booleans_and_the_other_integers_round_trip() {
        let bytes = to_bytes(Dtype::Bytes, &data(r#"["a", "", "文字"]"#), &[3], 3).unwrap();
        assert_eq!(bytes, strings::encode(&["a", "", "文字"]).unwrap());
        let json = serde_json::to_string(&to_json(Dtype::Bytes, &bytes)).unwrap();
        assert_eq!(json, r#"["a","","文字"]"#);
        let err = to_bytes(Dtype::Bytes, &data(r#"["a", 1]"#), &[2], 2).unwrap_err();
        assert_eq!(
            err,
            "element 1 is a number, not a string (BYTES data is strings)"
        );
        assert!(!has_json_form(
            Dtype::Bytes,
            &strings::encode(&[[0xffu8]]).unwrap()
        ));
        let flags = to_bytes(Dtype::Bool, &data("[true, false, 1]"), &[3], 3).unwrap();
        assert_eq!(flags, [1, 0, 1]);
        assert!(to_bytes(Dtype::Bool, &data("[2]"), &[1], 1).is_err());
        assert_eq!(
            to_bytes(Dtype::Uint64, &data("[18446744073709551615]"), &[1], 1).unwrap(),
            u64::MAX.to_le_bytes()
        );
        assert!(
            to_bytes(Dtype::Int8, &data("[128]"), &[1], 1)
                .unwrap_err()
                .contains("outside the range of INT8")
        );
        let json = serde_json::to_string(&to_json(Dtype::Int16, &(-3i16).to_le_bytes())).unwrap();
        assert_eq!(json, "[-3]");
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
