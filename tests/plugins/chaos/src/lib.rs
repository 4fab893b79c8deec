//! Test fixture: misbehaves on request, to prove the sandbox contains it.
//!
//! Input `action` (I64, one element): 0 echoes `x` back, 1 loops forever,
//! 2 grows memory without bound, 3 panics with a message, 4 returns in `x`
//! how many calls this instance has served (state that pooling carries over),
//! 5 hands `x`, whatever its type or shape, to the granted graph `graph` as
//! its input `input` and returns the graph's `y` or `logits` as `x`.
//! Output `x`.

use aimass_sdk::{
    DType, Error, Graph, ModelInfo, ModelKind, Params, Result, SubModel, Tensor, Tensors,
};

struct Chaos {
    hoard: Vec<Vec<u8>>,
    calls: u32,
    graph: Option<Graph>,
}

impl SubModel for Chaos {
    fn describe() -> ModelInfo {
        ModelInfo::new("chaos", "0.1.0", ModelKind::Other)
            .description("test fixture: loops, hogs memory or panics on request")
            .input("action", DType::I64, &[1])
            .input("x", DType::Fp32, &[-1])
            .output("x", DType::Fp32, &[-1])
    }

    fn init(_: &Params) -> Result<Self> {
        Ok(Chaos {
            hoard: Vec::new(),
            calls: 0,
            graph: None,
        })
    }

    fn infer(&mut self, mut inputs: Tensors) -> Result<Tensors> {
        self.calls += 1;
        let action = inputs.take("action")?.to_vec::<i64>()?;
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
