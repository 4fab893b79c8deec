//! Test fixture: misbehaves on request, to prove the sandbox contains it.
//!
//! Input `action` (I64, one element): 0 echoes `x` back, 1 loops forever,
//! 2 grows memory without bound, 3 panics with a message, 4 returns in `x`
//! how many calls this instance has served (state that pooling carries over),
//! 5 hands `x`, whatever its type or shape, to the granted graph `graph` as
//! its input `input` and returns the graph's `y` or `logits` as `x`.
//! Output `x`.
//!
//! With the init parameter `classes = C` it poses as a classifier instead
//! (input `x` [N, F], outputs `label`, `probabilities` [N, C], `confidence`),
//! so it can stand in an ensemble or cascade; the init parameter `action`
//! then says what every call does (0 answers uniform probabilities).
//!
//! With the init parameter `compute = true` it declares `x` (in and out) as
//! FP32 [N, M], so that action 5 may return a graph's two-dimensional output
//! within its declaration.
//!
//! With the init parameter `echo = "FP16" | "FP32" | "FP64" | "BF16" | "U8" |
//! "I32" | "I64"` it declares one input `x` of that type, shape [N, M], and
//! answers it back unchanged as `x`: a fixture for every element type. With
//! `refuse_negative = true` as well, an FP32 echo refuses (invalid input) a
//! call holding a negative value, as a model refuses a bad row.

use aimass_sdk::{
    DType, Error, Graph, ModelInfo, ModelKind, Params, Result, SubModel, Tensor, Tensors,
};

struct Chaos {
    hoard: Vec<Vec<u8>>,
    calls: u32,
    graph: Option<Graph>,
    /// Posing as a classifier: (classes, action).
    pose: Option<(u32, i64)>,
    /// Posing as an echo of this type.
    echo: Option<DType>,
    /// Declaring `x` two-dimensional, for action 5.
    compute: bool,
    /// An echo that refuses negative values.
    refuse_negative: bool,
}

impl SubModel for Chaos {
    fn describe() -> ModelInfo {
        ModelInfo::new("chaos", "0.1.0", ModelKind::Other)
            .description("test fixture: loops, hogs memory or panics on request")
            .input("action", DType::I64, &[1])
            .input("x", DType::Fp32, &[-1])
            .output("x", DType::Fp32, &[-1])
    }

    fn init(params: &Params) -> Result<Self> {
        params.deny_unknown(&["classes", "action", "echo", "compute", "refuse_negative"])?;
        let echo = match params.get::<String>("echo")?.as_deref() {
            None => None,
            Some(name) => Some(
                [
                    DType::Fp16,
                    DType::Fp32,
                    DType::Fp64,
                    DType::Bf16,
                    DType::U8,
                    DType::I32,
                    DType::I64,
                ]
                .into_iter()
                .find(|d| d.to_string() == name)
                .ok_or_else(|| Error::invalid_input(format!("unknown echo type `{name}`")))?,
            ),
        };
        let pose = match params.get::<i64>("classes")? {
            Some(classes) => Some((classes as u32, params.get_or("action", 0i64)?)),
            None => None,
        };
        Ok(Chaos {
            hoard: Vec::new(),
            calls: 0,
            graph: None,
            pose,
            echo,
            compute: params.get_or("compute", false)?,
            refuse_negative: params.get_or("refuse_negative", false)?,
        })
    }

    fn info(&self) -> ModelInfo {
        if let Some(dtype) = self.echo {
            return ModelInfo::new("chaos", "0.1.0", ModelKind::Other)
                .description("test fixture echoing its input")
                .input("x", dtype, &[-1, -1])
                .output("x", dtype, &[-1, -1]);
        }
        if self.compute {
            return ModelInfo::new("chaos", "0.1.0", ModelKind::Other)
                .description("test fixture handing its input to a graph")
                .input("action", DType::I64, &[1])
                .input("x", DType::Fp32, &[-1, -1])
                .output("x", DType::Fp32, &[-1, -1]);
        }
        match self.pose {
            None => Self::describe(),
            Some((classes, _)) => ModelInfo::new("chaos", "0.1.0", ModelKind::Classifier)
                .description("test fixture posing as a classifier")
                .input("x", DType::Fp32, &[-1, -1])
                .output("label", DType::I64, &[-1])
                .output("probabilities", DType::Fp32, &[-1, i64::from(classes)])
                .output("confidence", DType::Fp32, &[-1]),
        }
    }

    fn infer(&mut self, mut inputs: Tensors) -> Result<Tensors> {
        self.calls += 1;
        if self.echo.is_some() {
            let x = inputs.take("x")?;
            if self.refuse_negative && x.to_vec::<f32>()?.iter().any(|v| *v < 0.0) {
                return Err(Error::invalid_input("a value is negative"));
            }
            return Ok(Tensors::new().with("x", x));
        }
        let action = match self.pose {
            Some((classes, 0)) => {
                let rows = inputs.take("x")?.shape()[0] as usize;
                let c = classes as usize;
                return Ok(Tensors::new()
                    .with("label", Tensor::new(&[rows as u32], &vec![0i64; rows])?)
                    .with(
                        "probabilities",
                        Tensor::new(&[rows as u32, classes], &vec![1.0 / c as f32; rows * c])?,
                    )
                    .with(
                        "confidence",
                        Tensor::new(&[rows as u32], &vec![1.0 / c as f32; rows])?,
                    ));
            }
            Some((_, action)) => vec![action],
            None => inputs.take("action")?.to_vec::<i64>()?,
        };
        match action.first() {
            Some(0) => Ok(Tensors::new().with("x", inputs.take("x")?)),
            Some(1) => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            Some(2) => loop {
                self.hoard.push(vec![1u8; 1 << 20]);
            },
            Some(3) => panic!("chaos was asked to panic"),
            Some(4) => Ok(Tensors::new().with("x", Tensor::new(&[1], &[self.calls as f32])?)),
            Some(5) => {
                let graph = match &self.graph {
                    Some(graph) => graph,
                    None => self.graph.insert(Graph::by_name("graph")?),
                };
                let mut outputs = graph.compute(Tensors::new().with("input", inputs.take("x")?))?;
                let name = if outputs.get("y").is_some() {
                    "y"
                } else {
                    "logits"
                };
                Ok(Tensors::new().with("x", outputs.take(name)?))
            }
            other => Err(Error::invalid_input(format!("unknown action {other:?}"))),
        }
    }
}

aimass_sdk::export_sub_model!(Chaos);
