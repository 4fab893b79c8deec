//! `scaler`: a feature extractor computed entirely inside the plugin.
//!
//! `y = (x - offset) * scale`, with `offset` and `scale` either one number
//! for every feature or one number per feature (which also fixes the feature
//! count the node accepts). Typical use: standardisation with the training
//! set's means and inverse standard deviations, or `scale = 1/16` for pixel
//! intensities.
//!
//! With a `graph` parameter the scaled features are then projected through
//! that granted wasi-nn graph (e.g. standardisation + PCA), natively on the
//! host: the cheap part runs in WASM, the matrix product does not.
//! `graph-input` / `graph-output` name the graph's tensors (defaults `input`
//! and `features`); `projected` declares the output width.

use aimass_sdk::{DType, Graph, ModelInfo, ModelKind, Params, Result, SubModel, Tensor, Tensors};

/// One coefficient for all features, or one per feature.
#[derive(Debug, Clone, PartialEq)]
enum Coefficients {
    All(f32),
    PerFeature(Vec<f32>),
}

impl Coefficients {
    fn from_params(params: &Params, key: &str, default: f32) -> Result<Self> {
        match params.get::<Vec<f32>>(key) {
            Ok(Some(list)) => Ok(Coefficients::PerFeature(list)),
            Ok(None) => Ok(Coefficients::All(default)),
            Err(_) => params.require::<f32>(key).map(Coefficients::All),
        }
    }

    fn at(&self, feature: usize) -> f32 {
        match self {
            Coefficients::All(v) => *v,
            Coefficients::PerFeature(v) => v[feature],
        }
    }

    fn width(&self) -> Option<usize> {
        match self {
            Coefficients::All(_) => None,
            Coefficients::PerFeature(v) => Some(v.len()),
        }
    }
}

/// The configured scaler.
#[derive(Debug)]
pub struct Scaler {
    offset: Coefficients,
    scale: Coefficients,
    features: Option<usize>,
    projection: Option<Projection>,
}

/// A granted graph the scaled features go through.
#[derive(Debug)]
struct Projection {
    graph: Graph,
    input: String,
    output: String,
    width: Option<i64>,
}

impl SubModel for Scaler {
    fn describe() -> ModelInfo {
        ModelInfo::new(
            "scaler",
            env!("CARGO_PKG_VERSION"),
            ModelKind::FeatureExtractor,
        )
        .description("y = (x - offset) * scale, per feature or for all features")
        .input("x", DType::Fp32, &[-1, -1])
        .output("y", DType::Fp32, &[-1, -1])
    }

    fn init(params: &Params) -> Result<Self> {
        params.deny_unknown(&[
            "offset",
            "scale",
            "graph",
            "graph-input",
            "graph-output",
            "projected",
            "features",
        ])?;
        let offset = Coefficients::from_params(params, "offset", 0.0)?;
        let scale = Coefficients::from_params(params, "scale", 1.0)?;
        let features = match (offset.width(), scale.width()) {
            (Some(a), Some(b)) if a != b => {
                return Err(aimass_sdk::Error::invalid_input(format!(
                    "parameters `offset` ({a} values) and `scale` ({b} values) must have the same length"
                )));
            }
            (a, b) => a.or(b),
        };
        // A scalar offset and scale fit any width; `features` pins it, so
        // the declared input shape tells clients what to send.
        let features = match (features, params.get::<i64>("features")?) {
            (None, Some(n)) if n > 0 => Some(n as usize),
            (Some(width), Some(n)) if width as i64 != n => {
                return Err(aimass_sdk::Error::invalid_input(format!(
                    "parameter `features` is {n} but `offset`/`scale` have {width} values"
                )));
            }
            (_, Some(n)) if n <= 0 => {
                return Err(aimass_sdk::Error::invalid_input(format!(
                    "parameter `features` must be positive, got {n}"
                )));
            }
            (width, _) => width,
        };
        if features == Some(0) {
            return Err(aimass_sdk::Error::invalid_input(
                "parameters `offset`/`scale`: a per-feature list must not be empty",
            ));
        }
        let projection = match params.get::<String>("graph")? {
            Some(name) => Some(Projection {
                graph: Graph::by_name(&name)?,
                input: params.get_or("graph-input", "input".to_string())?,
                output: params.get_or("graph-output", "features".to_string())?,
                width: params.get::<i64>("projected")?,
            }),
            None => None,
        };
        Ok(Scaler {
            offset,
            scale,
            features,
            projection,
        })
    }

    fn info(&self) -> ModelInfo {
        let width = self.features.map_or(-1, |n| n as i64);
        ModelInfo::new(
            "scaler",
            env!("CARGO_PKG_VERSION"),
            ModelKind::FeatureExtractor,
        )
        .description("y = (x - offset) * scale, per feature or for all features")
        .input("x", DType::Fp32, &[-1, width])
        .output(
            "y",
            DType::Fp32,
            &[
                -1,
                self.projection
                    .as_ref()
                    .map_or(width, |p| p.width.unwrap_or(-1)),
            ],
        )
    }

    fn infer(&mut self, mut inputs: Tensors) -> Result<Tensors> {
        // Read in full, never passed on: one host call.
        let x = inputs.take("x")?.into_local();
        let width = self.features.map_or(-1, |n| n as i64);
        let shape = x.expect_shape(&[-1, width])?;
        let features = shape[1] as usize;
        let mut values = x.into_vec::<f32>()?;
        if features > 0 {
            for row in values.chunks_mut(features) {
                for (i, v) in row.iter_mut().enumerate() {
                    *v = (*v - self.offset.at(i)) * self.scale.at(i);
                }
            }
        }
        let scaled = Tensor::new(&shape, &values)?;
        let y = match &self.projection {
            None => scaled,
            Some(p) => p
                .graph
                .compute(Tensors::new().with(p.input.clone(), scaled))?
                .take(&p.output)?,
        };
        Ok(Tensors::new().with("y", y))
    }
}

aimass_sdk::export_sub_model!(Scaler);

#[cfg(test)]
mod tests {
    use super::*;
    use aimass_sdk::ParamValue;

    #[test]
    fn scales_per_feature() {
        let params = Params::new()
            .with("offset", ParamValue::Numbers(vec![1.0, 2.0]))
            .with("scale", ParamValue::Number(0.5));
        let mut scaler = Scaler::init(&params).unwrap();
        assert_eq!(scaler.info().inputs[0].shape, vec![-1, 2]);
        let x = Tensor::new(&[2, 2], &[3.0f32, 4.0, 1.0, 2.0]).unwrap();
        let mut out = scaler.infer(Tensors::new().with("x", x)).unwrap();
        assert_eq!(
            out.take("y").unwrap().to_vec::<f32>().unwrap(),
            vec![1.0, 1.0, 0.0, 0.0]
        );
    }

    #[test]
    fn refuses_mismatched_lengths_and_wrong_width() {
        let params = Params::new()
            .with("offset", ParamValue::Numbers(vec![1.0, 2.0]))
            .with("scale", ParamValue::Numbers(vec![1.0]));
        assert!(Scaler::init(&params).is_err());
        let mut scaler =
            Scaler::init(&Params::new().with("scale", ParamValue::Numbers(vec![1.0; 3]))).unwrap();
        let x = Tensor::new(&[1, 2], &[0f32; 2]).unwrap();
        let err = scaler.infer(Tensors::new().with("x", x)).unwrap_err();
        assert_eq!(
            err.message(),
            "input `x`: expected shape [-1, 3], got [1, 2]"
        );
    }

    #[test]
    fn features_pins_the_width_of_a_scalar_scale() {
        let pinned = Params::new()
            .with("scale", ParamValue::Number(2.0))
            .with("features", ParamValue::Integer(4));
        let scaler = Scaler::init(&pinned).unwrap();
        assert_eq!(scaler.info().inputs[0].shape, vec![-1, 4]);
        let clash = Params::new()
            .with("scale", ParamValue::Numbers(vec![1.0; 3]))
            .with("features", ParamValue::Integer(4));
        let err = Scaler::init(&clash).err().unwrap();
        assert_eq!(
            err.message(),
            "parameter `features` is 4 but `offset`/`scale` have 3 values"
        );
    }
}
