//! `ocr-recognise`: PaddleOCR's CRNN/SVTR line recogniser with CTC greedy
//! decoding, text out.
//!
//! Lines (from `ocr-detect`/`ocr-classify`: BGR `crops` and their `widths`)
//! are sorted by width and run through the granted graph (`graph`) in
//! batches of `batch`, each padded to its widest line rounded up to
//! `width-step` pixels (few distinct shapes, so tract keeps a plan for
//! each), normalised as `(x / 255 − 0.5) / 0.5`. Per line, the most likely
//! class at each step is kept, repeats and the CTC blank (class 0) are
//! dropped, and the rest are looked up in the character list, which the
//! operator grants as a graph (`characters`: no inputs, one UINT8 output of
//! UTF-8 text, one character per line; `examples/ocr/fetch_models.py`
//! writes it from the recogniser's ONNX metadata).
//!
//! With `best-class` (a granted graph taking `scores` [N, T, C] to each
//! step's `index` and `score`, which `fetch_models.py` writes), the scores
//! never leave the host: only N×T values come into the plugin instead of
//! N×T×C (6625 or 18710 classes). Without it, the plugin finds them itself.
//!
//! With `halfwidth = true`, fullwidth ASCII forms (`，` `！`, which these
//! Chinese-trained models often read for Latin punctuation) come out as
//! ASCII.
//!
//! Outputs: `text` BYTES `[lines]` (UTF-8), `confidence` FP32 `[lines]`
//! (the mean probability of the characters kept; 0 for an empty line), and
//! `boxes` passed on as they came.

use aimass_sdk::{
    DType, Error, Graph, ModelInfo, ModelKind, Params, Result, SubModel, Tensor, Tensors,
};

const KNOWN: &[&str] = &[
    "graph",
    "graph-input",
    "characters",
    "batch",
    "width-step",
    "line-height",
    "kind",
    "halfwidth",
    "best-class",
];

/// The configured recogniser.
#[derive(Debug)]
pub struct Recognise {
    graph: Graph,
    graph_input: String,
    characters: Vec<String>,
    batch: usize,
    width_step: usize,
    line_height: u32,
    kind: ModelKind,
    halfwidth: bool,
    best_class: Option<Graph>,
}

fn info(kind: ModelKind, line_height: i64) -> ModelInfo {
    ModelInfo::new("ocr-recognise", env!("CARGO_PKG_VERSION"), kind)
        .description("reads text lines (PaddleOCR recogniser, CTC greedy decoding)")
        .input("crops", DType::U8, &[-1, line_height, -1, 3])
        .input("widths", DType::I32, &[-1])
        .input("boxes", DType::Fp32, &[-1, 4, 2])
        .output("text", DType::Bytes, &[-1])
        .output("confidence", DType::Fp32, &[-1])
        .output("boxes", DType::Fp32, &[-1, 4, 2])
}

impl SubModel for Recognise {
    fn describe() -> ModelInfo {
        info(ModelKind::Classifier, 48)
    }

    fn init(params: &Params) -> Result<Self> {
        params.deny_unknown(KNOWN)?;
        let characters = read_characters(&params.require::<String>("characters")?)?;
        let batch: usize = params.get_or("batch", 6)?;
        let width_step: usize = params.get_or("width-step", 64)?;
        if batch == 0 || batch > 64 || width_step == 0 || width_step > 4096 {
            return Err(Error::invalid_input(format!(
                "parameters `batch` (1..=64) and `width-step` (1..=4096): got {batch} and {width_step}"
            )));
        }
        let kind = match params.get::<String>("kind")?.as_deref() {
            None | Some("classifier") => ModelKind::Classifier,
            Some("student") => ModelKind::Student,
            Some(other) => {
                return Err(Error::invalid_input(format!(
                    "parameter `kind`: expected classifier or student, got {other:?}"
                )));
            }
        };
        Ok(Recognise {
            graph: Graph::by_name(&params.require::<String>("graph")?)?,
            graph_input: params.get_or("graph-input", "x".to_string())?,
            characters,
            batch,
            width_step,
            line_height: params.get_or("line-height", 48)?,
            kind,
            halfwidth: params.get_or("halfwidth", false)?,
            best_class: match params.get::<String>("best-class")? {
                Some(name) => Some(Graph::by_name(&name)?),
                None => None,
            },
        })
    }

    fn info(&self) -> ModelInfo {
        info(self.kind, i64::from(self.line_height))
    }

    fn infer(&mut self, mut inputs: Tensors) -> Result<Tensors> {
        let crops = inputs.take("crops")?.into_local();
        let shape = crops.expect_shape(&[-1, i64::from(self.line_height), -1, 3])?;
        let (lines, height, width) = (shape[0] as usize, shape[1] as usize, shape[2] as usize);
        let widths = inputs.take("widths")?.into_vec::<i32>()?;
        let widths: Vec<usize> = widths
            .iter()
            .map(|&w| usize::try_from(w).ok().filter(|&w| w <= width && w > 0))
            .collect::<Option<_>>()
            .filter(|w: &Vec<usize>| w.len() == lines)
            .ok_or_else(|| {
                Error::invalid_input(format!("input `widths`: {lines} entries, each 1..={width}"))
            })?;
        let boxes = inputs.take("boxes")?;
        let pixels = crops.into_vec::<u8>()?;
        let mut order: Vec<usize> = (0..lines).collect();
        order.sort_by_key(|&i| widths[i]);
        let mut texts = vec![String::new(); lines];
        let mut confidences = vec![0f32; lines];
        for group in order.chunks(self.batch) {
            let padded = group
                .iter()
                .map(|&i| widths[i])
                .max()
                .unwrap_or(1)
                .div_ceil(self.width_step)
                * self.width_step;
            let decoded = self.read(&pixels, group, height, width, padded)?;
            for (&line, (text, confidence)) in group.iter().zip(decoded) {
                texts[line] = if self.halfwidth {
                    halfwidth(&text)
                } else {
                    text
                };
                confidences[line] = confidence;
            }
        }
        let count = lines as u32;
        Ok(Tensors::new()
            .with("text", Tensor::from_strings(&[count], &texts)?)
            .with("confidence", Tensor::new(&[count], &confidences)?)
            .with("boxes", boxes))
    }
}

impl Recognise {
    /// Text and confidence of each line in `group`, run as one batch of
    /// `padded` pixels wide.
    fn read(
        &self,
        pixels: &[u8],
        group: &[usize],
        height: usize,
        width: usize,
        padded: usize,
    ) -> Result<Vec<(String, f32)>> {
        let plane = height * padded;
        let mut data = vec![0f32; group.len() * 3 * plane];
        for (b, &line) in group.iter().enumerate() {
            let base = line * height * width * 3;
            for y in 0..height {
                for x in 0..width.min(padded) {
                    let at = base + (y * width + x) * 3;
                    for c in 0..3 {
                        let v = f32::from(pixels[at + c]);
                        data[(b * 3 + c) * plane + y * padded + x] = (v / 255.0 - 0.5) / 0.5;
                    }
                }
            }
        }
        let x = Tensor::new(
            &[group.len() as u32, 3, height as u32, padded as u32],
            &data,
        )?;
        drop(data);
        let mut outputs = self
            .graph
            .compute(Tensors::new().with(self.graph_input.clone(), x))?;
        let name = outputs
            .names()
            .next()
            .map(str::to_string)
            .unwrap_or_default();
        let scores = outputs.take(&name)?;
        let shape = scores.shape();
        let (steps, classes) = match shape.as_slice() {
            [b, t, c] if *b as usize == group.len() && *c as usize == self.characters.len() => {
                (*t as usize, *c as usize)
            }
            _ => {
                return Err(Error::model(format!(
                    "graph `{}` returned shape {shape:?}; expected [{}, steps, {}] (the character list's length)",
                    self.graph.name(),
                    group.len(),
                    self.characters.len()
                )));
            }
        };
        let best = match &self.best_class {
            // The scores stay in the host: only each step's best class and
            // its probability come into this plugin.
            Some(graph) => {
                let mut best = graph.compute(Tensors::new().with("scores", scores))?;
                let index = best.take("index")?.into_vec::<i64>()?;
                let score = best.take("score")?.into_vec::<f32>()?;
                if index.len() != group.len() * steps || score.len() != index.len() {
                    return Err(Error::model(format!(
                        "graph `{}` returned {} classes and {} scores for {} steps",
                        graph.name(),
                        index.len(),
                        score.len(),
                        group.len() * steps
                    )));
                }
                index
                    .into_iter()
                    .map(|i| usize::try_from(i).unwrap_or(0))
                    .zip(score)
                    .collect::<Vec<_>>()
            }
            None => scores
                .into_vec::<f32>()?
                .chunks_exact(classes)
                .map(best_of)
                .collect(),
        };
        Ok(best
            .chunks_exact(steps)
            .map(|line| ctc_greedy(line, &self.characters))
            .collect())
    }
}

/// The most likely class of one step, and its probability.
fn best_of(step: &[f32]) -> (usize, f32) {
    step.iter().enumerate().fold(
        (0, f32::MIN),
        |acc, (i, &v)| if v > acc.1 { (i, v) } else { acc },
    )
}

/// Greedy CTC over each step's best class and its probability: repeats
/// and blanks (class 0) dropped; confidence is the mean probability of
/// what is kept.
fn ctc_greedy(steps: &[(usize, f32)], characters: &[String]) -> (String, f32) {
    let mut text = String::new();
    let (mut sum, mut kept) = (0f32, 0usize);
    let mut previous = usize::MAX;
    for &(best, p) in steps {
        if best != 0 && best != previous {
            if let Some(c) = characters.get(best) {
                text.push_str(c);
            }
            sum += p;
            kept += 1;
        }
        previous = best;
    }
    let confidence = if kept == 0 { 0.0 } else { sum / kept as f32 };
    (text, confidence)
}

/// Fullwidth forms of ASCII (`，` `！` `（`, which PaddleOCR's Chinese
/// recognisers often read for printed Latin punctuation) as ASCII, and the
/// ideographic space as a space.
fn halfwidth(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '\u{3000}' => ' ',
            other => other,
        })
        .collect()
}

/// The character list from its granted graph: index 0 the CTC blank.
fn read_characters(graph: &str) -> Result<Vec<String>> {
    let graph = Graph::by_name(graph)?;
    let mut outputs = graph.compute(Tensors::new())?;
    let name = outputs
        .names()
        .next()
        .map(str::to_string)
        .unwrap_or_default();
    let bytes = outputs.take(&name)?.into_vec::<u8>()?;
    let text = String::from_utf8(bytes).map_err(|_| {
        Error::invalid_input(format!(
            "the character list `{}` is not UTF-8",
            graph.name()
        ))
    })?;
    // One per line; a line of its own is the space RapidOCR appends.
    let mut characters: Vec<String> = text.split('\n').map(str::to_string).collect();
    if characters.last().is_some_and(String::is_empty) {
        characters.pop();
    }
    if characters.len() < 2 {
        return Err(Error::invalid_input(format!(
            "the character list `{}` has {} entries",
            graph.name(),
            characters.len()
        )));
    }
    Ok(characters)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fullwidth_punctuation_becomes_ascii() {
        assert_eq!(halfwidth("a，b！（Ｃ）　文"), "a,b!(C) 文");
    }

    #[test]
    fn greedy_ctc_drops_blanks_and_repeats() {
        let chars: Vec<String> = ["<blank>", "a", "b"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        // steps: a a blank a b b
        let steps = [
            [0.1, 0.8, 0.1],
            [0.1, 0.6, 0.3],
            [0.9, 0.05, 0.05],
            [0.2, 0.7, 0.1],
            [0.1, 0.1, 0.8],
            [0.1, 0.2, 0.7],
        ];
        let best: Vec<(usize, f32)> = steps.iter().map(|s| best_of(s)).collect();
        let (text, confidence) = ctc_greedy(&best, &chars);
        assert_eq!(text, "aab");
        assert!((confidence - (0.8 + 0.7 + 0.8) / 3.0).abs() < 1e-6);
        assert_eq!(
            ctc_greedy(&[(0, 1.0), (0, 0.9)], &chars),
            (String::new(), 0.0)
        );
    }
}

aimass_sdk::export_sub_model!(Recognise);
