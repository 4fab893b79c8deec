//! Test fixture: BYTES in and out.
//!
//! `text` BYTES `[N]` → `upper` BYTES `[N]` (ASCII letters upper-cased,
//! every other byte as it came, so non-UTF-8 input stays non-UTF-8),
//! `length` INT64 `[N]` (bytes per element) and `confidence` FP32 `[N]`
//! (1 for an element of even length, 0 for odd: a cascade escalates odd
//! ones). `prefix` (a parameter) is put before every answer, so a cascade's
//! stages can be told apart.
//!
//! `mode` makes it break the contract on purpose: `undeclared` also returns
//! an output it never declared; `oversized` returns an element larger than
//! the host takes; `bad-framing` hands the host BYTES data whose lengths lie.

use aimass_sdk::bindings::aimass::plugin::tensors as host;
use aimass_sdk::{DType, Error, ModelInfo, ModelKind, Params, Result, SubModel, Tensor, Tensors};

/// The configured fixture.
pub struct Strings {
    prefix: String,
    mode: String,
}

impl SubModel for Strings {
    fn describe() -> ModelInfo {
        ModelInfo::new("strings", env!("CARGO_PKG_VERSION"), ModelKind::Classifier)
            .description("upper-cases byte strings")
            .input("text", DType::Bytes, &[-1])
            .output("upper", DType::Bytes, &[-1])
            .output("length", DType::I64, &[-1])
            .output("confidence", DType::Fp32, &[-1])
    }

    fn init(params: &Params) -> Result<Self> {
        params.deny_unknown(&["prefix", "mode"])?;
        let mode = params.get_or("mode", "echo".to_string())?;
        if !["echo", "undeclared", "oversized", "bad-framing"].contains(&mode.as_str()) {
            return Err(Error::invalid_input(format!(
                "parameter `mode`: unknown {mode:?}"
            )));
        }
        Ok(Strings {
            prefix: params.get_or("prefix", String::new())?,
            mode,
        })
    }

    fn infer(&mut self, mut inputs: Tensors) -> Result<Tensors> {
        let text = inputs.take("text")?;
        let rows = text.expect_shape(&[-1])?[0];
        let elements = text.into_byte_strings()?;
        let upper: Vec<Vec<u8>> = elements
            .iter()
            .map(|e| {
                let mut out = self.prefix.as_bytes().to_vec();
                out.extend(e.iter().map(u8::to_ascii_uppercase));
                out
            })
            .collect();
        let length: Vec<i64> = elements.iter().map(|e| e.len() as i64).collect();
        let confidence: Vec<f32> = elements
            .iter()
            .map(|e| if e.len() % 2 == 0 { 1.0 } else { 0.0 })
            .collect();
        let upper = match self.mode.as_str() {
            "oversized" => {
                // One element past the host's 64 MiB bound, framed by hand
                // (the SDK would refuse to build it).
                let size: u32 = (64 << 20) + 1;
                let mut data = size.to_le_bytes().to_vec();
                data.resize(4 + size as usize, b'x');
                Tensor::from_host(host::create(DType::Bytes, &[1], &data))
            }
            "bad-framing" => {
                // Says 5 bytes, carries 1: straight to the host, past the
                // SDK's own check.
                let lie = [5u8, 0, 0, 0, b'a'];
                Tensor::from_host(host::create(DType::Bytes, &[rows], &lie))
            }
            _ => Tensor::from_byte_strings(&[rows], &upper)?,
        };
        let mut outputs = Tensors::new()
            .with("upper", upper)
            .with("length", Tensor::new(&[rows], &length)?)
            .with("confidence", Tensor::new(&[rows], &confidence)?);
        if self.mode == "undeclared" {
            outputs = outputs.with("secret", Tensor::from_strings(&[1], &["leak"])?);
        }
        Ok(outputs)
    }
}

aimass_sdk::export_sub_model!(Strings);
