//! A plugin held to what it says about itself: its `info()` must be a sane
//! description, and every `infer` output must match it, before anything it
//! returns reaches a client or the next layer.

use super::info::ModelInfo;
use super::text::bounded;
use crate::tensor::NamedTensor;
use crate::tensor::TensorSpec;
use std::collections::HashSet;

/// The most inputs or outputs a plugin may declare.
pub const MAX_TENSORS: usize = 256;
/// The most dimensions a declared tensor, or a tensor a plugin makes, may
/// have.
pub const MAX_RANK: usize = 16;
/// The largest fixed dimension a plugin may declare.
pub const MAX_FIXED_DIM: i64 = 1 << 31;
/// The longest name, version, label or tensor name a plugin may report.
pub const MAX_NAME: usize = 256;
/// The longest description.
pub const MAX_DESCRIPTION: usize = 4096;
/// The most class labels.
pub const MAX_LABELS: usize = 1 << 16;

/// Checks a plugin's description; the message names the field.
pub fn validate_info(info: &ModelInfo) -> Result<(), String> {
    let text = |field: &str, value: &str, max: usize| {
        if value.len() > max {
            Err(format!(
                "`{field}` is {} bytes long, at most {max} are allowed",
                value.len()
            ))
        } else {
            Ok(())
        }
    };
    text("name", &info.name, MAX_NAME)?;
    printable("name", &info.name)?;
    text("version", &info.version, MAX_NAME)?;
    printable("version", &info.version)?;
    text("description", &info.description, MAX_DESCRIPTION)?;
    specs("inputs", &info.inputs)?;
    specs("outputs", &info.outputs)?;
    if info.outputs.is_empty() {
        return Err("`outputs` is empty: a sub-model must return something".into());
    }
    if let Some(labels) = &info.labels {
        if labels.len() > MAX_LABELS {
            return Err(format!(
                "`labels` has {} entries, at most {MAX_LABELS}",
                labels.len()
            ));
        }
        for (i, label) in labels.iter().enumerate() {
            text(&format!("labels[{i}]"), label, MAX_NAME)?;
            printable(&format!("labels[{i}]"), label)?;
        }
    }
    Ok(())
}

/// A name shown to people (in `check`, `inspect`, logs, the page, capture
/// columns) may hold no character that a terminal or a log reader acts on:
/// no newline to forge a line with, no escape sequence.
fn printable(field: &str, value: &str) -> Result<(), String> {
    if value.chars().any(crate::printable::needs_escape) {
        return Err(format!(
            "`{field}` holds a control or bidirectional character (shown escaped: `{}`); \
             names must be plain text",
            crate::printable::escape(value)
        ));
    }
    Ok(())
}

fn specs(field: &str, specs: &[TensorSpec]) -> Result<(), String> {
    if specs.len() > MAX_TENSORS {
        return Err(format!(
            "`{field}` has {} tensors, at most {MAX_TENSORS}",
            specs.len()
        ));
    }
    let mut seen = HashSet::new();
    for (i, spec) in specs.iter().enumerate() {
        let at = format!("{field}[{i}]");
        if spec.name.is_empty() {
            return Err(format!("`{at}.name` is empty"));
        }
        if spec.name.len() > MAX_NAME {
            return Err(format!(
                "`{at}.name` is {} bytes long, at most {MAX_NAME}",
                spec.name.len()
            ));
        }
        printable(&format!("{at}.name"), &spec.name)?;
        if !seen.insert(spec.name.as_str()) {
            return Err(format!(
                "`{at}.name` `{}` is used twice in `{field}`",
                bounded(&spec.name, 64)
            ));
        }
        if spec.shape.len() > MAX_RANK {
            return Err(format!(
                "`{at}.shape` has {} dimensions, at most {MAX_RANK}",
                spec.shape.len()
            ));
        }
        for (d, &dim) in spec.shape.iter().enumerate() {
            if !(-1..=MAX_FIXED_DIM).contains(&dim) {
                return Err(format!(
                    "`{at}.shape[{d}]` is {dim}; a dimension is -1 (dynamic) or 0..={MAX_FIXED_DIM}"
                ));
            }
        }
    }
    Ok(())
}

/// The rows of a call: the leading dimension all inputs share, when every
/// declared input has a dynamic leading dimension. Outputs with a dynamic
/// leading dimension must then have that many rows.
pub fn input_rows(info: &ModelInfo, inputs: &[NamedTensor]) -> Option<u32> {
    if info.inputs.is_empty() || info.inputs.iter().any(|s| s.shape.first() != Some(&-1)) {
        return None;
    }
    let mut rows = inputs.iter().map(|(_, t)| t.dims().first().copied());
    let first = rows.next()??;
    rows.all(|r| r == Some(first)).then_some(first)
}

/// Checks `outputs` against the declared outputs: every declared name once,
/// nothing else, the declared type and rank, fixed dimensions as declared,
/// `rows` rows where the leading dimension is dynamic, and bytes that match
/// the dimensions (a [`Tensor`](crate::tensor::Tensor) cannot be made otherwise).
pub fn check_outputs(
    info: &ModelInfo,
    rows: Option<u32>,
    outputs: &[NamedTensor],
) -> Result<(), String> {
    if outputs.len() > info.outputs.len() {
        let extra = outputs
            .iter()
            .find(|(name, _)| !info.outputs.iter().any(|s| &s.name == name))
            .map(|(name, _)| bounded(name, 64));
        return Err(match extra {
            Some(name) => format!(
                "it returned {} outputs, it declares {}; `{name}` is not declared",
                outputs.len(),
                info.outputs.len()
            ),
            None => format!(
                "it returned {} outputs, it declares {} (an output appears twice)",
                outputs.len(),
                info.outputs.len()
            ),
        });
    }
    // No allocation on this per-call path: at most 256 outputs, compared
    // pairwise only to find a duplicate.
    for (index, (name, tensor)) in outputs.iter().enumerate() {
        let Some(spec) = info.outputs.iter().find(|s| &s.name == name) else {
            return Err(format!("output `{}` is not declared", bounded(name, 64)));
        };
        if outputs[..index].iter().any(|(earlier, _)| earlier == name) {
            return Err(format!("output `{name}` is returned twice"));
        }
        let dtype = tensor.dtype();
        if dtype != spec.dtype {
            return Err(format!(
                "output `{name}` is declared {} but is {dtype}",
                spec.dtype
            ));
        }
        let dims = tensor.dims();
        if dims.len() != spec.shape.len() {
            return Err(format!(
                "output `{name}` is declared with shape {:?} but has shape {dims:?}",
                spec.shape
            ));
        }
        for (axis, (&got, &want)) in dims.iter().zip(&spec.shape).enumerate() {
            if want >= 0 && i64::from(got) != want {
                return Err(format!(
                    "output `{name}` is declared with shape {:?} but has shape {dims:?}",
                    spec.shape
                ));
            }
            if axis == 0
                && want == -1
                && let Some(rows) = rows
                && got != rows
            {
                return Err(format!(
                    "output `{name}` has {got} rows for an input of {rows} rows"
                ));
            }
        }
    }
    if outputs.len() < info.outputs.len()
        && let Some(missing) = info
            .outputs
            .iter()
            .find(|s| !outputs.iter().any(|(name, _)| name == &s.name))
    {
        return Err(format!("declared output `{}` is missing", missing.name));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::ModelKind;
    use crate::tensor::Dtype;
    use crate::tensor::Tensor;

    fn spec(name: &str, dtype: Dtype, shape: &[i64]) -> TensorSpec {
        TensorSpec {
            name: name.into(),
            dtype,
            shape: shape.to_vec(),
        }
    }

    fn info() -> ModelInfo {
        ModelInfo {
            name: "m".into(),
            version: "1".into(),
            kind: ModelKind::Classifier,
            description: String::new(),
            inputs: vec![spec("x", Dtype::Fp32, &[-1, 4])],
            outputs: vec![spec("y", Dtype::Fp32, &[-1, 10])],
            labels: None,
            max_batch_size: None,
        }
    }

    fn f32s(dims: &[u32], bytes: usize) -> Tensor {
        Tensor::new(Dtype::Fp32, dims.to_vec(), vec![0; bytes]).unwrap()
    }

    #[test]
    fn a_sane_description_passes_and_each_flaw_is_named() {
        assert!(validate_info(&info()).is_ok());
        let mut twice = info();
        twice.inputs.push(spec("x", Dtype::Int64, &[-1]));
        assert!(validate_info(&twice).unwrap_err().contains("used twice"));
        let mut negative = info();
        negative.inputs[0].shape = vec![-5];
        assert!(
            validate_info(&negative)
                .unwrap_err()
                .contains("inputs[0].shape[0]")
        );
        let mut empty = info();
        empty.outputs[0].name.clear();
        assert!(
            validate_info(&empty)
                .unwrap_err()
                .contains("outputs[0].name")
        );
        let mut huge = info();
        huge.outputs[0].shape = vec![i64::MAX];
        assert!(
            validate_info(&huge)
                .unwrap_err()
                .contains("outputs[0].shape[0]")
        );
    }

    #[test]
    fn outputs_are_held_to_the_declaration() {
        let info = info();
        let rows = input_rows(&info, &[("x".into(), f32s(&[3, 4], 48))]);
        assert_eq!(rows, Some(3));
        let good = vec![("y".to_string(), f32s(&[3, 10], 120))];
        assert!(check_outputs(&info, rows, &good).is_ok());

        let wrong_type = vec![(
            "y".to_string(),
            Tensor::new(Dtype::Int64, vec![3, 10], vec![0; 240]).unwrap(),
        )];
        let err = check_outputs(&info, rows, &wrong_type).unwrap_err();
        assert!(err.contains("declared FP32 but is INT64"), "{err}");
        let missing = check_outputs(&info, rows, &[]).unwrap_err();
        assert!(missing.contains("`y` is missing"), "{missing}");
        let mut extra = good.clone();
        extra.push(("secret".into(), f32s(&[1], 4)));
        assert!(
            check_outputs(&info, rows, &extra)
                .unwrap_err()
                .contains("`secret`")
        );
        let shape = check_outputs(&info, rows, &[("y".into(), f32s(&[3], 12))]).unwrap_err();
        assert!(shape.contains("shape"), "{shape}");
        let other_rows = check_outputs(&info, rows, &[("y".into(), f32s(&[2, 10], 80))]);
        assert!(other_rows.unwrap_err().contains("2 rows for an input of 3"));
        // Bytes that do not match the shape cannot even be made into a tensor.
        assert!(Tensor::new(Dtype::Fp32, vec![3, 10], vec![0; 7]).is_err());
    }
}
