//! # aimass-sdk
//!
//! Everything a plugin author needs to ship a sub-model to
//! [aimass](https://github.com/aimass/aimass): the contract's bindings
//! (authors never add `wit-bindgen` themselves), a [`SubModel`] trait with an
//! [`export_sub_model!`] macro, typed [`Tensor`]s, the operator's [`Params`],
//! safe [`Graph`] wrappers over `wasi:nn`, and the small [`ops`] classifier
//! plugins always need.
//!
//! A plugin is a `cdylib` crate built with
//! `cargo build --release --target wasm32-wasip2`; the `.wasm` it produces
//! is the component aimass loads.
//!
//! ```
//! use aimass_sdk::{DType, ModelInfo, ModelKind, Params, Result, SubModel, Tensor, Tensors};
//!
//! /// Multiplies its input by a factor the operator chooses.
//! struct Scale {
//!     factor: f32,
//! }
//!
//! impl SubModel for Scale {
//!     fn describe() -> ModelInfo {
//!         ModelInfo::new("scale", "0.1.0", ModelKind::FeatureExtractor)
//!             .description("x * factor")
//!             .input("x", DType::Fp32, &[-1, -1])
//!             .output("y", DType::Fp32, &[-1, -1])
//!     }
//!
//!     fn init(params: &Params) -> Result<Self> {
//!         params.deny_unknown(&["factor"])?;
//!         Ok(Scale { factor: params.get_or("factor", 1.0)? })
//!     }
//!
//!     fn infer(&mut self, mut inputs: Tensors) -> Result<Tensors> {
//!         let x = inputs.take("x")?;
//!         let shape = x.expect_shape(&[-1, -1])?;
//!         let y: Vec<f32> = x.to_vec::<f32>()?.iter().map(|v| v * self.factor).collect();
//!         Ok(Tensors::new().with("y", Tensor::new(&shape, &y)?))
//!     }
//! }
//!
//! aimass_sdk::export_sub_model!(Scale);
//!
//! # fn main() -> Result<()> {
//! // Plugin logic can be tested natively with `cargo test`:
//! let mut model = Scale::init(&Params::new().with("factor", aimass_sdk::ParamValue::Number(2.0)))?;
//! let x = Tensor::new(&[1, 2], &[1.0f32, 2.5])?;
//! let mut y = model.infer(Tensors::new().with("x", x))?;
//! assert_eq!(y.take("y")?.to_vec::<f32>()?, vec![2.0, 5.0]);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![deny(unsafe_code)]

// The generated bindings name their runtime by the path a plugin sees.
extern crate self as aimass_sdk;

pub mod bindings;
mod error;
mod export;
mod info;
pub mod kinds;
pub mod log;
mod model;
mod nn;
pub mod ops;
mod params;
mod tensor;
mod tensors;

pub use error::{Error, Result};
#[doc(hidden)]
pub use export::__private;
pub use info::{ModelInfo, ModelKind, TensorSpec};
pub use model::SubModel;
pub use nn::Graph;
pub use params::{FromParam, ParamValue, Params};
pub use tensor::{DType, Element, Tensor, element_count};
pub use tensors::Tensors;
