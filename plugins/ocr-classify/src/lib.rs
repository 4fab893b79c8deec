//! `ocr-classify`: PaddleOCR's text-angle classifier over line crops.
//!
//! Each line (from `ocr-detect`: BGR `crops`, their `widths`) is scaled to
//! fit 48×192 (shrunk to 192 wide when longer, padded with zeros when
//! shorter), normalised as `(x / 255 − 0.5) / 0.5`, and classified by the
//! granted graph (`graph`) in batches of `batch`. A line read as upside
//! down with at least `threshold` confidence is turned 180° in place.
//! `crops`, `widths` and `boxes` go on (the crops turned where needed)
//! beside `angle` (0 or 180) and `angle-confidence`.

use aimass_sdk::{
    DType, Error, Graph, ModelInfo, ModelKind, Params, Result, SubModel, Tensor, Tensors,
};

const KNOWN: &[&str] = &["graph", "graph-input", "threshold", "batch", "line-height"];
const CLS_HEIGHT: usize = 48;
const CLS_WIDTH: usize = 192;

/// The configured classifier.
#[derive(Debug)]
pub struct Classify {
    graph: Graph,
    graph_input: String,
    threshold: f32,
    batch: usize,
    line_height: u32,
}

fn info(line_height: i64) -> ModelInfo {
    ModelInfo::new(
        "ocr-classify",
        env!("CARGO_PKG_VERSION"),
        ModelKind::Classifier,
    )
    .description("turns upside-down text lines upright (PaddleOCR angle classifier)")
    .input("crops", DType::U8, &[-1, line_height, -1, 3])
    .input("widths", DType::I32, &[-1])
    .input("boxes", DType::Fp32, &[-1, 4, 2])
    .output("crops", DType::U8, &[-1, line_height, -1, 3])
    .output("widths", DType::I32, &[-1])
    .output("boxes", DType::Fp32, &[-1, 4, 2])
    .output("angle", DType::I32, &[-1])
    .output("angle-confidence", DType::Fp32, &[-1])
    .labels(["0", "180"])
}

impl SubModel for Classify {
    fn describe() -> ModelInfo {
        info(48)
    }

    fn init(params: &Params) -> Result<Self> {
        params.deny_unknown(KNOWN)?;
        let threshold: f32 = params.get_or("threshold", 0.9)?;
        if !(0.0..=1.0).contains(&threshold) {
            return Err(Error::invalid_input(format!(
                "parameter `threshold` is a probability between 0 and 1, got {threshold}"
            )));
        }
        let batch: usize = params.get_or("batch", 6)?;
        if batch == 0 || batch > 64 {
            return Err(Error::invalid_input(format!(
                "parameter `batch` must be 1..=64, got {batch}"
            )));
        }
        Ok(Classify {
            graph: Graph::by_name(&params.require::<String>("graph")?)?,
            graph_input: params.get_or("graph-input", "x".to_string())?,
            threshold,
            batch,
            line_height: params.get_or("line-height", 48)?,
        })
    }

    fn info(&self) -> ModelInfo {
        info(i64::from(self.line_height))
    }

    fn infer(&mut self, mut inputs: Tensors) -> Result<Tensors> {
        let crops = inputs.take("crops")?.into_local();
        let shape = crops.expect_shape(&[-1, i64::from(self.line_height), -1, 3])?;
        let (lines, height, width) = (shape[0] as usize, shape[1] as usize, shape[2] as usize);
        let widths = inputs.take("widths")?.into_vec::<i32>()?;
        if widths.len() != lines {
            return Err(Error::invalid_input(format!(
                "input `widths` has {} entries for {lines} lines",
                widths.len()
            )));
        }
        let widths: Vec<usize> = widths
            .iter()
            .map(|&w| usize::try_from(w).ok().filter(|&w| w <= width && w > 0))
            .collect::<Option<_>>()
            .ok_or_else(|| Error::invalid_input(format!("input `widths`: each is 1..={width}")))?;
        let boxes = inputs.take("boxes")?;
        let mut pixels = crops.into_vec::<u8>()?;
        let row = height * width * 3;
        let mut angles = Vec::with_capacity(lines);
        let mut confidences = Vec::with_capacity(lines);
        for start in (0..lines).step_by(self.batch) {
            let end = (start + self.batch).min(lines);
            let probabilities = self.classify(&pixels, start..end, &widths, height, width)?;
            for (i, p) in (start..end).zip(probabilities.chunks_exact(2)) {
                let upside_down = p[1] > p[0] && p[1] >= self.threshold;
                angles.push(if upside_down { 180 } else { 0 });
                confidences.push(p[0].max(p[1]));
                if upside_down {
                    turn_half(
                        &mut pixels[i * row..(i + 1) * row],
                        height,
                        width,
                        widths[i],
                    );
                }
            }
        }
        let count = lines as u32;
        let widths: Vec<i32> = widths.iter().map(|&w| w as i32).collect();
        Ok(Tensors::new()
            .with("crops", Tensor::new(&shape, &pixels)?)
            .with("widths", Tensor::new(&[count], &widths)?)
            .with("boxes", boxes)
            .with("angle", Tensor::new(&[count], &angles)?)
            .with("angle-confidence", Tensor::new(&[count], &confidences)?))
    }
}

impl Classify {
    /// The [0°, 180°] probabilities of lines `range`.
    fn classify(
        &self,
        pixels: &[u8],
        range: std::ops::Range<usize>,
        widths: &[usize],
        height: usize,
        width: usize,
    ) -> Result<Vec<f32>> {
        let plane = CLS_HEIGHT * CLS_WIDTH;
        let mut data = vec![0f32; range.len() * 3 * plane];
        for (b, line) in range.clone().enumerate() {
            let own = widths[line];
            // Scaled to 48 high, then shrunk to 192 wide only if longer.
            let scaled_w = ((own * CLS_HEIGHT) as f32 / height as f32).ceil() as usize;
            let target_w = scaled_w.clamp(1, CLS_WIDTH);
            let base = line * height * width * 3;
            for y in 0..CLS_HEIGHT {
                let sy = ((y as f32 + 0.5) * height as f32 / CLS_HEIGHT as f32 - 0.5)
                    .clamp(0.0, (height - 1) as f32);
                for x in 0..target_w {
                    let sx = ((x as f32 + 0.5) * own as f32 / target_w as f32 - 0.5)
                        .clamp(0.0, (own - 1) as f32);
                    for c in 0..3 {
                        let v = sample(pixels, base, width, c, sx, sy);
                        data[(b * 3 + c) * plane + y * CLS_WIDTH + x] = (v / 255.0 - 0.5) / 0.5;
                    }
                }
            }
        }
        let x = Tensor::new(
            &[range.len() as u32, 3, CLS_HEIGHT as u32, CLS_WIDTH as u32],
            &data,
        )?;
        let mut outputs = self
            .graph
            .compute(Tensors::new().with(self.graph_input.clone(), x))?;
        let name = outputs
            .names()
            .next()
            .map(str::to_string)
            .unwrap_or_default();
        let probabilities = outputs.take(&name)?.into_local();
        if probabilities.shape() != [range.len() as u32, 2] {
            return Err(Error::model(format!(
                "graph `{}` returned shape {:?}; expected [{}, 2]",
                self.graph.name(),
                probabilities.shape(),
                range.len()
            )));
        }
        probabilities.into_vec::<f32>()
    }
}

/// Channel `c` of an HWC byte image at (x, y), bilinear.
fn sample(pixels: &[u8], base: usize, width: usize, c: usize, x: f32, y: f32) -> f32 {
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let at = |x: usize, y: usize| {
        f32::from(
            pixels
                .get(base + (y * width + x) * 3 + c)
                .copied()
                .unwrap_or(0),
        )
    };
    let x1 = x0 + usize::from(fx > 0.0);
    let y1 = y0 + usize::from(fy > 0.0);
    let top = at(x0, y0) + (at(x1, y0) - at(x0, y0)) * fx;
    let bottom = at(x0, y1) + (at(x1, y1) - at(x0, y1)) * fx;
    top + (bottom - top) * fy
}

/// Turns the first `own` columns of an HWC line 180° in place.
fn turn_half(line: &mut [u8], height: usize, width: usize, own: usize) {
    let pixel = |x: usize, y: usize| (y * width + x) * 3;
    let total = height * own;
    for k in 0..total / 2 {
        let (x, y) = (k % own, k / own);
        let (mx, my) = (own - 1 - x, height - 1 - y);
        let (a, b) = (pixel(x, y), pixel(mx, my));
        for c in 0..3 {
            line.swap(a + c, b + c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_half_turn_reverses_the_line_and_leaves_the_padding() {
        // 2 rows, 3 columns of which 2 are the line's own.
        let mut line: Vec<u8> = (0..18).collect();
        turn_half(&mut line, 2, 3, 2);
        let pixel = |l: &[u8], x: usize, y: usize| l[(y * 3 + x) * 3];
        assert_eq!(pixel(&line, 0, 0), 12, "the bottom-right own pixel");
        assert_eq!(pixel(&line, 1, 1), 0);
        assert_eq!(pixel(&line, 2, 0), 6, "padding untouched");
    }
}

aimass_sdk::export_sub_model!(Classify);
