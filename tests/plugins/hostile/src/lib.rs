//! Test fixture: a third party's plugin that attacks the host, one way per
//! `mode` (an init parameter), to prove each attack is contained.
//!
//! By default it declares input `x` FP32 [N, 10] and output `y` FP32 [N, 10]
//! and echoes `x` as `y`. Modes:
//!
//! - `sleep-infer` / `sleep-init`: blocks 60 s in `wasi:io/poll` (a host
//!   call), in `infer` or in `init`.
//! - `hoard-host`: makes the host hold 40 `wasi:nn` tensors of 32 MiB each.
//! - `wrong-dtype`, `missing`, `extra`, `wrong-shape`, `wrong-rows`,
//!   `many-outputs`: returns outputs its own `info()` does not declare.
//! - `lying-dims` / `lying-bytes`: builds a tensor whose dimensions disagree
//!   with its bytes.
//! - `keep-handle`: keeps each call's input handle and returns it in the next
//!   call, handing one client's data to the next.
//! - `read-kept` / `describe-kept`: keeps each call's input handle and, in
//!   the next call, reads its values (`tensors.take`) or its type and shape
//!   (`tensors.describe`).
//! - `huge-error`: returns a 4 MiB error message.
//! - `chatty`: writes 1000 lines to stderr in every call.
//! - `log-rows`: logs the rows of each call (one line) and echoes.
//! - `nn-flood`: `calls` (a parameter, default 100,000) failing `wasi:nn`
//!   calls, one in 10,000 with a 1 MiB name.
//! - `spin`: loops forever.
//! - `heavy`: input `x` [N, 64], passed as it is (a host handle) to the
//!   granted graph `features`; returns the rows computed as `y` [1].
//! - `exit`: calls `exit(7)`.
//! - `dup-input`, `neg-dim`, `empty-output`, `huge-dim`: describes itself
//!   wrongly.

use aimass_sdk::bindings::aimass::plugin::tensors;
use aimass_sdk::bindings::wasi::nn::tensor::{Tensor as HostTensor, TensorType};
use aimass_sdk::{
    DType, Error, Graph, ModelInfo, ModelKind, Params, Result, SubModel, Tensor, Tensors,
};

struct Hostile {
    mode: String,
    calls: u32,
    kept: Option<Tensor>,
    hoard: Vec<HostTensor>,
    graph: Option<Graph>,
}

impl SubModel for Hostile {
    fn describe() -> ModelInfo {
        ModelInfo::new("hostile", "0.1.0", ModelKind::Other)
            .description("test fixture: attacks the host in the way its `mode` says")
            .input("x", DType::Fp32, &[-1, 10])
            .output("y", DType::Fp32, &[-1, 10])
    }

    fn init(params: &Params) -> Result<Self> {
        params.deny_unknown(&["mode", "calls"])?;
        let mode: String = params.get_or("mode", "echo".to_string())?;
        if mode == "sleep-init" {
            std::thread::sleep(std::time::Duration::from_secs(60));
        }
        let graph = match mode.as_str() {
            "heavy" => Some(Graph::by_name("features")?),
            _ => None,
        };
        Ok(Hostile {
            calls: params.get_or("calls", 100_000i64)? as u32,
            mode,
            kept: None,
            hoard: Vec::new(),
            graph,
        })
    }

    fn info(&self) -> ModelInfo {
        let base = ModelInfo::new("hostile", "0.1.0", ModelKind::Other);
        match self.mode.as_str() {
            "heavy" => base
                .input("x", DType::Fp32, &[-1, 64])
                .output("y", DType::Fp32, &[1]),
            "dup-input" => base
                .input("x", DType::Fp32, &[-1, 10])
                .input("x", DType::I64, &[-1])
                .output("y", DType::Fp32, &[-1, 10]),
            "neg-dim" => {
                base.input("x", DType::Fp32, &[-1, -5])
                    .output("y", DType::Fp32, &[-1, 10])
            }
            "empty-output" => {
                base.input("x", DType::Fp32, &[-1, 10])
                    .output("", DType::Fp32, &[-1, 10])
            }
            "huge-dim" => {
                base.input("x", DType::Fp32, &[-1, 10])
                    .output("y", DType::Fp32, &[-1, i64::MAX])
            }
            _ => Self::describe(),
        }
    }

    fn infer(&mut self, mut inputs: Tensors) -> Result<Tensors> {
        let x = inputs.take("x")?;
        let rows = x.shape().first().copied().unwrap_or(0);
        let y = |shape: &[u32]| {
            let n: u32 = shape.iter().product();
            Tensor::new(shape, &vec![0.5f32; n as usize])
        };
        match self.mode.as_str() {
            "sleep-infer" => {
                std::thread::sleep(std::time::Duration::from_secs(60));
                Ok(Tensors::new().with("y", x))
            }
            "spin" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "hoard-host" => {
                let block = vec![7u8; 32 << 20];
                for _ in 0..40 {
                    self.hoard
                        .push(HostTensor::new(&[(32 << 20) / 4], TensorType::Fp32, &block));
                }
                Ok(Tensors::new().with("y", x))
            }
            "wrong-dtype" => {
                let n = rows as usize * 10;
                Ok(Tensors::new().with("y", Tensor::new(&[rows, 10], &vec![1i64; n])?))
            }
            "missing" => Ok(Tensors::new()),
            "extra" => Ok(Tensors::new()
                .with("y", x)
                .with("secret", Tensor::new(&[1], &[42.0f32])?)),
            "wrong-shape" => Ok(Tensors::new().with("y", y(&[3])?)),
            "wrong-rows" => Ok(Tensors::new().with("y", y(&[rows + 1, 10])?)),
            "many-outputs" => {
                let mut out = Tensors::new().with("y", x);
                for i in 0..20_000 {
                    out.push(format!("o{i}"), Tensor::new(&[1], &[0.0f32])?);
                }
                Ok(out)
            }
            "lying-dims" => {
                let t = HostTensor::new(&[u32::MAX; 3], TensorType::Fp32, &[0u8; 4]);
                Ok(Tensors::new().with("y", Tensor::from_host(t)))
            }
            "lying-bytes" => {
                let t = HostTensor::new(&[2], TensorType::Fp32, &[0u8; 7]);
                Ok(Tensors::new().with("y", Tensor::from_host(t)))
            }
            "keep-handle" => {
                let previous = self.kept.replace(x);
                match previous {
                    Some(theirs) => Ok(Tensors::new().with("y", theirs)),
                    None => Ok(Tensors::new().with("y", y(&[rows, 10])?)),
                }
            }
            "read-kept" | "describe-kept" => {
                let Some(theirs) = self.kept.replace(x) else {
                    return Ok(Tensors::new().with("y", y(&[rows, 10])?));
                };
                let values = if self.mode == "read-kept" {
                    theirs.into_vec::<f32>()?
                } else {
                    // Straight to the host: the SDK would answer from what
                    // it learnt in the earlier call.
                    let (_, dims) = tensors::describe(&theirs.into_host());
                    vec![dims.len() as f32; rows as usize * 10]
                };
                Ok(Tensors::new().with("y", Tensor::new(&[rows, 10], &values)?))
            }
            "huge-error" => Err(Error::model("e".repeat(4 << 20))),
            "log-rows" => {
                aimass_sdk::log::info(&format!("log-rows saw {rows} rows"));
                Ok(Tensors::new().with("y", x))
            }
            "chatty" => {
                for i in 0..1000 {
                    eprintln!("chatty line {i}");
                }
                Ok(Tensors::new().with("y", x))
            }
            "nn-flood" => {
                let long = "n".repeat(1 << 20);
                let mut last = None;
                for i in 0..self.calls {
                    let name = if i % 10_000 == 0 {
                        long.as_str()
                    } else {
                        "nope"
                    };
                    last = Graph::by_name(name).err();
                }
                Err(last.unwrap_or_else(|| Error::internal("a graph was found")))
            }
            "heavy" => {
                let graph = self
                    .graph
                    .as_ref()
                    .ok_or_else(|| Error::internal("no graph"))?;
                let mut out = graph.compute(Tensors::new().with("input", x))?;
                let computed = out.take("features")?.shape()[0];
                Ok(Tensors::new().with("y", Tensor::new(&[1], &[computed as f32])?))
            }
            "exit" => std::process::exit(7),
            _ => Ok(Tensors::new().with("y", x)),
        }
    }
}

aimass_sdk::export_sub_model!(Hostile);
