//! A template sub-model: a binary classifier over one score per row.
//!
//! `label = 1` when `score >= threshold`, else `0`. Replace the logic, keep
//! the shape: describe → init (check parameters) → infer (check inputs).

use aimass_sdk::{DType, Error, ModelInfo, ModelKind, Params, Result, SubModel, Tensor, Tensors};

/// The configured model: whatever `init` derives from the parameters.
pub struct Threshold {
    threshold: f32,
}

impl SubModel for Threshold {
    fn describe() -> ModelInfo {
        ModelInfo::new(
            "threshold",
            env!("CARGO_PKG_VERSION"),
            ModelKind::Classifier,
        )
        .description("label 1 when score >= threshold, else 0")
        .input("score", DType::Fp32, &[-1])
        .output("label", DType::I64, &[-1])
        .labels(["below", "above"])
    }

    fn init(params: &Params) -> Result<Self> {
        // Refuse misspelt keys: the operator sees the error at start-up.
        params.deny_unknown(&["threshold"])?;
        let threshold: f32 = params.get_or("threshold", 0.5)?;
        if !threshold.is_finite() {
            return Err(Error::invalid_input("parameter `threshold` must be finite"));
        }
        Ok(Threshold { threshold })
    }

    fn infer(&mut self, mut inputs: Tensors) -> Result<Tensors> {
        let score = inputs.take("score")?;
        let shape = score.expect_shape(&[-1])?;
        let labels: Vec<i64> = score
            .to_vec::<f32>()?
            .iter()
            .map(|&s| i64::from(s >= self.threshold))
            .collect();
        Ok(Tensors::new().with("label", Tensor::new(&shape, &labels)?))
    }
}

aimass_sdk::export_sub_model!(Threshold);

#[cfg(test)]
mod tests {
    use super::*;
    use aimass_sdk::ParamValue;

    #[test]
    fn labels_by_threshold() {
        let params = Params::new().with("threshold", ParamValue::Number(0.7));
        let mut model = Threshold::init(&params).unwrap();
        let score = Tensor::new(&[3], &[0.1f32, 0.7, 0.9]).unwrap();
        let mut out = model.infer(Tensors::new().with("score", score)).unwrap();
        assert_eq!(
            out.take("label").unwrap().to_vec::<i64>().unwrap(),
            vec![0, 1, 1]
        );
    }
}
