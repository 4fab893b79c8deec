//! Test fixture: an echo that one client's row can poison, for proving that
//! a batching node's merged call fails only the request that poisoned it.
//!
//! Input `x` FP32 [N, M]; outputs `y` (the rows echoed) and `y:shape` (each
//! row's first value, FP32 [N]: a name that spells another tensor's capture
//! column). A row whose first value is one of these poisons the whole call:
//! -1 traps, -2 loops until the time limit, -3 is refused as a model error,
//! -4 is answered a row short, -5 is refused as invalid input, -6 grows
//! memory past the cap, -7 is refused as a model error of 1,400 three-byte
//! characters. Every other error message quotes all the values the call was
//! given, as a careless model's error would: a merged call's message would
//! then carry other clients' rows.

use aimass_sdk::{DType, Error, ModelInfo, ModelKind, Params, Result, SubModel, Tensor, Tensors};

struct Poison {
    hoard: Vec<Vec<u8>>,
}

impl SubModel for Poison {
    fn describe() -> ModelInfo {
        ModelInfo::new("poison", "0.1.0", ModelKind::Other)
            .description("test fixture: an echo that a poison row makes fail")
            .input("x", DType::Fp32, &[-1, -1])
            .output("y", DType::Fp32, &[-1, -1])
            .output("y:shape", DType::Fp32, &[-1])
    }

    fn init(params: &Params) -> Result<Self> {
        params.deny_unknown(&[])?;
        Ok(Poison { hoard: Vec::new() })
    }

    fn info(&self) -> ModelInfo {
        Self::describe()
    }

    fn infer(&mut self, mut inputs: Tensors) -> Result<Tensors> {
        let x = inputs.take("x")?;
        let shape = x.shape().to_vec();
        let (rows, width) = (shape[0] as usize, shape[1] as usize);
        let values = x.to_vec::<f32>()?;
        let firsts: Vec<f32> = values.chunks(width.max(1)).map(|r| r[0]).collect();
        let quoted = || format!("{values:?}");
        let poison = firsts.iter().copied().find(|v| (-7.0..=-1.0).contains(v));
        let mut answered = rows;
        match poison {
            Some(-1.0) => panic!("poisoned: trapping on {}", quoted()),
            Some(-2.0) => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            Some(-3.0) => return Err(Error::model(format!("cannot score {}", quoted()))),
            Some(-4.0) => answered = rows - 1,
            Some(-5.0) => return Err(Error::invalid_input(format!("refusing {}", quoted()))),
            Some(-7.0) => return Err(Error::model("語".repeat(1400))),
            Some(-6.0) => loop {
                self.hoard.push(vec![1u8; 1 << 20]);
            },
            _ => {}
        }
        let y = Tensor::new(
            &[answered as u32, width as u32],
            &values[..answered * width],
        )?;
        let firsts = Tensor::new(&[answered as u32], &firsts[..answered])?;
        Ok(Tensors::new().with("y", y).with("y:shape", firsts))
    }
}

aimass_sdk::export_sub_model!(Poison);
