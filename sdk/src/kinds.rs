//! One example per kind of sub-model. Each is a whole plugin; the examples
//! that do not call `wasi:nn` also run as tests natively, which is how a
//! plugin's own logic can be unit-tested with `cargo test`.
//!
//! # Feature extractor
//!
//! Turns raw inputs into features: here, pixel intensities 0–16 to 0–1.
//!
//! ```
//! use aimass_sdk::{DType, ModelInfo, ModelKind, Params, Result, SubModel, Tensor, Tensors};
//!
//! struct Intensities;
//!
//! impl SubModel for Intensities {
//!     fn describe() -> ModelInfo {
//!         ModelInfo::new("intensities", "1.0.0", ModelKind::FeatureExtractor)
//!             .input("pixels", DType::Fp32, &[-1, 64])
//!             .output("features", DType::Fp32, &[-1, 64])
//!     }
//!     fn init(params: &Params) -> Result<Self> {
//!         params.deny_unknown(&[])?;
//!         Ok(Intensities)
//!     }
//!     fn infer(&mut self, mut inputs: Tensors) -> Result<Tensors> {
//!         let pixels = inputs.take("pixels")?;
//!         let shape = pixels.expect_shape(&[-1, 64])?;
//!         let features: Vec<f32> = pixels.to_vec::<f32>()?.iter().map(|p| p / 16.0).collect();
//!         Ok(Tensors::new().with("features", Tensor::new(&shape, &features)?))
//!     }
//! }
//! aimass_sdk::export_sub_model!(Intensities);
//!
//! # fn main() -> Result<()> {
//! let mut model = Intensities::init(&Params::new())?;
//! let pixels = Tensor::new(&[1, 64], &[16.0f32; 64])?;
//! let mut out = model.infer(Tensors::new().with("pixels", pixels))?;
//! assert_eq!(out.take("features")?.to_vec::<f32>()?, vec![1.0; 64]);
//! # Ok(()) }
//! ```
//!
//! # Classifier
//!
//! Maps scores to a label and calibrated probabilities, all in WASM.
//!
//! ```
//! use aimass_sdk::{ops, DType, ModelInfo, ModelKind, Params, Result, SubModel, Tensor, Tensors};
//!
//! struct Softmax;
//!
//! impl SubModel for Softmax {
//!     fn describe() -> ModelInfo {
//!         ModelInfo::new("softmax", "1.0.0", ModelKind::Classifier)
//!             .input("logits", DType::Fp32, &[-1, 3])
//!             .output("label", DType::I64, &[-1])
//!             .output("probabilities", DType::Fp32, &[-1, 3])
//!             .labels(["cat", "dog", "eel"])
//!     }
//!     fn init(_: &Params) -> Result<Self> {
//!         Ok(Softmax)
//!     }
//!     fn infer(&mut self, mut inputs: Tensors) -> Result<Tensors> {
//!         let logits = inputs.take("logits")?;
//!         let batch = logits.expect_shape(&[-1, 3])?[0];
//!         let mut p = logits.to_vec::<f32>()?;
//!         ops::softmax_rows(&mut p, 3);
//!         let label: Vec<i64> = ops::argmax_rows(&p, 3).into_iter().map(|i| i as i64).collect();
//!         Ok(Tensors::new()
//!             .with("label", Tensor::new(&[batch], &label)?)
//!             .with("probabilities", Tensor::new(&[batch, 3], &p)?))
//!     }
//! }
//! aimass_sdk::export_sub_model!(Softmax);
//!
//! # fn main() -> Result<()> {
//! let logits = Tensor::new(&[2, 3], &[0.0f32, 5.0, 0.0, 9.0, 0.0, 0.0])?;
//! let mut out = Softmax::init(&Params::new())?.infer(Tensors::new().with("logits", logits))?;
//! assert_eq!(out.take("label")?.to_vec::<i64>()?, vec![1, 0]);
//! # Ok(()) }
//! ```
//!
//! # Student
//!
//! A small distilled network whose weights the operator loaded into the
//! host; the plugin reaches it by the name its node was granted and hands
//! the input handle straight to it. (Compiled here, not run: it needs the
//! host's `wasi:nn`.)
//!
//! ```no_run
//! use aimass_sdk::{DType, Graph, ModelInfo, ModelKind, Params, Result, SubModel, Tensors};
//!
//! struct Student {
//!     graph: Graph,
//! }
//!
//! impl SubModel for Student {
//!     fn describe() -> ModelInfo {
//!         ModelInfo::new("student", "1.0.0", ModelKind::Student)
//!             .input("x", DType::Fp32, &[-1, 16])
//!             .output("logits", DType::Fp32, &[-1, 10])
//!             .max_batch_size(256)
//!     }
//!     fn init(params: &Params) -> Result<Self> {
//!         params.deny_unknown(&["graph"])?;
//!         Ok(Student { graph: Graph::by_name(&params.require::<String>("graph")?)? })
//!     }
//!     fn infer(&mut self, mut inputs: Tensors) -> Result<Tensors> {
//!         let x = inputs.take("x")?;
//!         x.expect_shape(&[-1, 16])?;
//!         let mut out = self.graph.compute(Tensors::new().with("input", x))?;
//!         Ok(Tensors::new().with("logits", out.take("logits")?))
//!     }
//! }
//! aimass_sdk::export_sub_model!(Student);
//! # fn main() {}
//! ```
//!
//! # Ensemble member
//!
//! One of several models whose outputs an ensemble combines; here a linear
//! scorer whose weights are node parameters, so one plugin serves several
//! members.
//!
//! ```
//! use aimass_sdk::{DType, Error, ModelInfo, ModelKind, ParamValue, Params, Result, SubModel, Tensor, Tensors};
//!
//! struct Linear {
//!     weights: Vec<f32>,
//!     bias: f32,
//! }
//!
//! impl SubModel for Linear {
//!     fn describe() -> ModelInfo {
//!         ModelInfo::new("linear", "1.0.0", ModelKind::EnsembleMember)
//!             .input("x", DType::Fp32, &[-1, -1])
//!             .output("score", DType::Fp32, &[-1])
//!     }
//!     fn init(params: &Params) -> Result<Self> {
//!         params.deny_unknown(&["weights", "bias"])?;
//!         let weights: Vec<f32> = params.require("weights")?;
//!         if weights.is_empty() {
//!             return Err(Error::invalid_input("parameter `weights` must not be empty"));
//!         }
//!         Ok(Linear { weights, bias: params.get_or("bias", 0.0)? })
//!     }
//!     fn infer(&mut self, mut inputs: Tensors) -> Result<Tensors> {
//!         let x = inputs.take("x")?;
//!         let shape = x.expect_shape(&[-1, self.weights.len() as i64])?;
//!         let scores: Vec<f32> = x
//!             .to_vec::<f32>()?
//!             .chunks(self.weights.len())
//!             .map(|row| row.iter().zip(&self.weights).map(|(a, w)| a * w).sum::<f32>() + self.bias)
//!             .collect();
//!         Ok(Tensors::new().with("score", Tensor::new(&shape[..1], &scores)?))
//!     }
//! }
//! aimass_sdk::export_sub_model!(Linear);
//!
//! # fn main() -> Result<()> {
//! let params = Params::new()
//!     .with("weights", ParamValue::Numbers(vec![1.0, -1.0]))
//!     .with("bias", ParamValue::Number(0.5));
//! let x = Tensor::new(&[2, 2], &[3.0f32, 1.0, 0.0, 2.0])?;
//! let mut out = Linear::init(&params)?.infer(Tensors::new().with("x", x))?;
//! assert_eq!(out.take("score")?.to_vec::<f32>()?, vec![2.5, -1.5]);
//! # Ok(()) }
//! ```
//!
//! # Meta-model
//!
//! A stacking model over other members' outputs: here, a weighted average of
//! two members' class probabilities.
//!
//! ```
//! use aimass_sdk::{DType, ModelInfo, ModelKind, ParamValue, Params, Result, SubModel, Tensor, Tensors};
//!
//! struct Blend {
//!     weight_a: f32,
//! }
//!
//! impl SubModel for Blend {
//!     fn describe() -> ModelInfo {
//!         ModelInfo::new("blend", "1.0.0", ModelKind::MetaModel)
//!             .input("a", DType::Fp32, &[-1, -1])
//!             .input("b", DType::Fp32, &[-1, -1])
//!             .output("probabilities", DType::Fp32, &[-1, -1])
//!     }
//!     fn init(params: &Params) -> Result<Self> {
//!         Ok(Blend { weight_a: params.get_or("weight-a", 0.5)? })
//!     }
//!     fn infer(&mut self, mut inputs: Tensors) -> Result<Tensors> {
//!         let a = inputs.take("a")?;
//!         let shape = a.expect_shape(&[-1, -1])?;
//!         let b = inputs.take("b")?;
//!         b.expect_shape(&[shape[0] as i64, shape[1] as i64])?;
//!         let w = self.weight_a;
//!         let mixed: Vec<f32> = a
//!             .to_vec::<f32>()?
//!             .iter()
//!             .zip(b.to_vec::<f32>()?)
//!             .map(|(pa, pb)| w * pa + (1.0 - w) * pb)
//!             .collect();
//!         Ok(Tensors::new().with("probabilities", Tensor::new(&shape, &mixed)?))
//!     }
//! }
//! aimass_sdk::export_sub_model!(Blend);
//!
//! # fn main() -> Result<()> {
//! let mut blend = Blend::init(&Params::new().with("weight-a", ParamValue::Number(0.75)))?;
//! let inputs = Tensors::new()
//!     .with("a", Tensor::new(&[1, 2], &[1.0f32, 0.0])?)
//!     .with("b", Tensor::new(&[1, 2], &[0.0f32, 1.0])?);
//! let mut out = blend.infer(inputs)?;
//! assert_eq!(out.take("probabilities")?.to_vec::<f32>()?, vec![0.75, 0.25]);
//! # Ok(()) }
//! ```
//!
//! # Router
//!
//! Chooses a branch per row, here by how sure an upstream model is: branch 0
//! keeps the cheap answer, branch 1 escalates.
//!
//! ```
//! use aimass_sdk::{DType, ModelInfo, ModelKind, Params, Result, SubModel, Tensor, Tensors};
//!
//! struct Escalate {
//!     threshold: f32,
//! }
//!
//! impl SubModel for Escalate {
//!     fn describe() -> ModelInfo {
//!         ModelInfo::new("escalate", "1.0.0", ModelKind::Router)
//!             .input("confidence", DType::Fp32, &[-1])
//!             .output("branch", DType::I64, &[-1])
//!     }
//!     fn init(params: &Params) -> Result<Self> {
//!         Ok(Escalate { threshold: params.get_or("threshold", 0.9)? })
//!     }
//!     fn infer(&mut self, mut inputs: Tensors) -> Result<Tensors> {
//!         let confidence = inputs.take("confidence")?;
//!         let shape = confidence.expect_shape(&[-1])?;
//!         let branch: Vec<i64> = confidence
//!             .to_vec::<f32>()?
//!             .iter()
//!             .map(|&c| i64::from(c < self.threshold))
//!             .collect();
//!         Ok(Tensors::new().with("branch", Tensor::new(&shape, &branch)?))
//!     }
//! }
//! aimass_sdk::export_sub_model!(Escalate);
//!
//! # fn main() -> Result<()> {
//! let confidence = Tensor::new(&[3], &[0.95f32, 0.5, 0.9])?;
//! let mut out = Escalate::init(&Params::new())?.infer(Tensors::new().with("confidence", confidence))?;
//! assert_eq!(out.take("branch")?.to_vec::<i64>()?, vec![0, 1, 0]);
//! # Ok(()) }
//! ```
