//! `ocr-detect`: an encoded image (PNG or JPEG) in; its text lines out, as
//! boxes and as crops ready for a line recogniser.
//!
//! Pre- and post-processing follow PaddleOCR's DB detector as RapidOCR runs
//! it: the image is scaled so its short side is at least `limit-side`
//! (its long side at most `max-side`), each side a multiple of 32,
//! normalised as `(x / 255 − 0.5) / 0.5` in BGR order; the granted graph
//! (`graph`) gives a text probability map; the map above `threshold` is
//! dilated by 2×2, its outer contours become minimum-area rectangles, those
//! whose mean probability is under `box-threshold` are dropped, and the
//! rest are grown ("unclipped") by `area × unclip / perimeter` on each side.
//! Each line is then cut out of the original image along its rectangle
//! (turned upright when it is at least 1.5× taller than wide) and scaled to
//! `line-height` pixels high.
//!
//! Outputs, one row per line, top to bottom then left to right:
//! - `crops` UINT8 `[lines, line-height, width, 3]`: BGR pixels, each line
//!   left-aligned and padded with zeros to the widest;
//! - `widths` INT32 `[lines]`: each line's own width in `crops`;
//! - `boxes` FP32 `[lines, 4, 2]`: corners in the original image's pixels
//!   (top-left, top-right, bottom-right, bottom-left).

mod geometry;
mod scale;

use aimass_sdk::{
    DType, Error, Graph, ModelInfo, ModelKind, Params, Result, SubModel, Tensor, Tensors,
};
use geometry::{Quad, order_lines};
use image::{ImageReader, Limits, RgbImage};

const KNOWN: &[&str] = &[
    "graph",
    "graph-input",
    "graph-output",
    "limit-side",
    "max-side",
    "threshold",
    "box-threshold",
    "unclip",
    "line-height",
    "max-line-width",
    "max-lines",
    "max-pixels",
];

/// The configured detector.
#[derive(Debug)]
pub struct Detect {
    graph: Graph,
    graph_input: String,
    graph_output: String,
    limit_side: u32,
    max_side: u32,
    threshold: f32,
    box_threshold: f32,
    unclip: f32,
    line_height: u32,
    max_line_width: u32,
    max_lines: usize,
    max_pixels: u64,
}

fn info(line_height: i64) -> ModelInfo {
    ModelInfo::new(
        "ocr-detect",
        env!("CARGO_PKG_VERSION"),
        ModelKind::FeatureExtractor,
    )
    .description("finds text lines in a PNG or JPEG image (PaddleOCR DB detector)")
    .input("image", DType::Bytes, &[1])
    .output("crops", DType::U8, &[-1, line_height, -1, 3])
    .output("widths", DType::I32, &[-1])
    .output("boxes", DType::Fp32, &[-1, 4, 2])
}

fn positive<T: PartialOrd + Default + Copy + std::fmt::Display>(key: &str, value: T) -> Result<T> {
    if value > T::default() {
        Ok(value)
    } else {
        Err(Error::invalid_input(format!(
            "parameter `{key}` must be positive, got {value}"
        )))
    }
}

impl SubModel for Detect {
    fn describe() -> ModelInfo {
        info(48)
    }

    fn init(params: &Params) -> Result<Self> {
        params.deny_unknown(KNOWN)?;
        let unit = |key: &str, value: f32| {
            if (0.0..=1.0).contains(&value) {
                Ok(value)
            } else {
                Err(Error::invalid_input(format!(
                    "parameter `{key}` is a probability between 0 and 1, got {value}"
                )))
            }
        };
        Ok(Detect {
            graph: Graph::by_name(&params.require::<String>("graph")?)?,
            graph_input: params.get_or("graph-input", "x".to_string())?,
            graph_output: params.get("graph-output")?.unwrap_or_default(),
            limit_side: positive("limit-side", params.get_or("limit-side", 736u32)?)?,
            max_side: positive("max-side", params.get_or("max-side", 2000u32)?)?,
            threshold: unit("threshold", params.get_or("threshold", 0.3)?)?,
            box_threshold: unit("box-threshold", params.get_or("box-threshold", 0.5)?)?,
            unclip: positive("unclip", params.get_or("unclip", 1.6f32)?)?,
            line_height: positive("line-height", params.get_or("line-height", 48u32)?)?,
            max_line_width: positive("max-line-width", params.get_or("max-line-width", 1600u32)?)?,
            max_lines: positive("max-lines", params.get_or("max-lines", 1000usize)?)?,
            max_pixels: positive("max-pixels", params.get_or("max-pixels", 40_000_000u64)?)?,
        })
    }

    fn info(&self) -> ModelInfo {
        info(i64::from(self.line_height))
    }

    fn infer(&mut self, mut inputs: Tensors) -> Result<Tensors> {
        let image = inputs.take("image")?;
        image.expect_shape(&[1])?;
        let encoded = image.into_byte_strings()?.pop().unwrap_or_default();
        let mut phases = Phases::start();
        let image = self.decode(&encoded)?;
        phases.end("decode");
        let (width, height) = image.dimensions();
        let (scaled_w, scaled_h) = self.detector_size(width, height);
        let map = self.probability_map(&image, scaled_w, scaled_h, &mut phases)?;
        let mut quads = geometry::text_quads(
            &map,
            scaled_w as usize,
            scaled_h as usize,
            self.threshold,
            self.box_threshold,
            self.unclip,
            self.max_lines,
        );
        let (sx, sy) = (
            width as f32 / scaled_w as f32,
            height as f32 / scaled_h as f32,
        );
        for quad in &mut quads {
            for point in quad.iter_mut() {
                point.0 = (point.0 * sx).round().clamp(0.0, width as f32);
                point.1 = (point.1 * sy).round().clamp(0.0, height as f32);
            }
        }
        quads.retain(|q| geometry::short_side(q) >= 1.0);
        order_lines(&mut quads);
        phases.end("boxes");
        let lines = self.lines(&image, &quads);
        phases.end("crops");
        aimass_sdk::log::debug(&format!(
            "{width}×{height} image, detector at {scaled_w}×{scaled_h}, {} lines: {}",
            quads.len(),
            phases.report()
        ));
        lines
    }
}

/// Time spent in each step of one call, for the debug log: where a page's
/// time goes inside the sandbox, and how long the detector's compute took
/// as seen from here.
struct Phases {
    since: std::time::Instant,
    spent: Vec<(&'static str, std::time::Duration)>,
}

impl Phases {
    fn start() -> Self {
        Phases {
            since: std::time::Instant::now(),
            spent: Vec::new(),
        }
    }

    fn end(&mut self, phase: &'static str) {
        let now = std::time::Instant::now();
        self.spent.push((phase, now - self.since));
        self.since = now;
    }

    fn report(&self) -> String {
        self.spent
            .iter()
            .map(|(phase, spent)| format!("{phase} {:.1} ms", spent.as_secs_f64() * 1e3))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Detect {
    fn decode(&self, encoded: &[u8]) -> Result<RgbImage> {
        let mut limits = Limits::default();
        limits.max_image_width = Some(self.max_pixels.min(u64::from(u32::MAX)) as u32);
        limits.max_image_height = Some(self.max_pixels.min(u64::from(u32::MAX)) as u32);
        limits.max_alloc = Some(self.max_pixels.saturating_mul(4));
        let mut reader = ImageReader::new(std::io::Cursor::new(encoded))
            .with_guessed_format()
            .map_err(|e| Error::invalid_input(format!("input `image`: {e}")))?;
        reader.limits(limits);
        let image = reader.decode().map_err(|e| {
            Error::invalid_input(format!(
                "input `image` is not a PNG or JPEG image it can read: {e}"
            ))
        })?;
        let pixels = u64::from(image.width()) * u64::from(image.height());
        if pixels > self.max_pixels || pixels == 0 {
            return Err(Error::invalid_input(format!(
                "input `image` is {}×{} pixels; at most {} are taken",
                image.width(),
                image.height(),
                self.max_pixels
            )));
        }
        Ok(image.into_rgb8())
    }

    /// The detector's input size: short side at least `limit-side`, long
    /// side at most `max-side`, both multiples of 32.
    fn detector_size(&self, width: u32, height: u32) -> (u32, u32) {
        let (w, h) = (width as f32, height as f32);
        let mut ratio = if w.min(h) < self.limit_side as f32 {
            self.limit_side as f32 / w.min(h)
        } else {
            1.0
        };
        if w.max(h) * ratio > self.max_side as f32 {
            ratio = self.max_side as f32 / w.max(h);
        }
        let round32 = |v: f32| ((((v * ratio) / 32.0).round() as u32) * 32).max(32);
        (round32(w), round32(h))
    }

    /// The detector's text probabilities for `image` scaled to `w`×`h`.
    fn probability_map(
        &self,
        image: &RgbImage,
        w: u32,
        h: u32,
        phases: &mut Phases,
    ) -> Result<Vec<f32>> {
        let data = scale::detector_input(image, w, h);
        let x = Tensor::new(&[1, 3, h, w], &data)?;
        drop(data);
        phases.end("scale");
        let mut outputs = self
            .graph
            .compute(Tensors::new().with(self.graph_input.clone(), x))?;
        phases.end("detector");
        let name = if self.graph_output.is_empty() {
            outputs
                .names()
                .next()
                .map(str::to_string)
                .unwrap_or_default()
        } else {
            self.graph_output.clone()
        };
        let map = outputs.take(&name)?.into_local();
        if map.shape() != [1, 1, h, w] {
            return Err(Error::model(format!(
                "graph `{}` returned a map of shape {:?} for an image of {w}×{h}; expected [1, 1, {h}, {w}]",
                self.graph.name(),
                map.shape()
            )));
        }
        map.into_vec::<f32>()
    }

    /// Each line cut out upright, scaled to the line height, padded to the
    /// widest.
    fn lines(&self, image: &RgbImage, quads: &[Quad]) -> Result<Tensors> {
        let height = self.line_height;
        let lines: Vec<(u32, Vec<u8>)> = quads
            .iter()
            .map(|quad| geometry::cut_line(image, quad, height, self.max_line_width))
            .collect();
        let widest = lines.iter().map(|(w, _)| *w).max().unwrap_or(1);
        let count = lines.len() as u32;
        let row = (height * widest * 3) as usize;
        let mut crops = vec![0u8; row * lines.len()];
        for (i, (width, pixels)) in lines.iter().enumerate() {
            let line_row = (*width * 3) as usize;
            for y in 0..height as usize {
                let from = &pixels[y * line_row..(y + 1) * line_row];
                let at = i * row + y * (widest * 3) as usize;
                crops[at..at + line_row].copy_from_slice(from);
            }
        }
        let widths: Vec<i32> = lines.iter().map(|(w, _)| *w as i32).collect();
        let boxes: Vec<f32> = quads
            .iter()
            .flat_map(|q| q.iter().flat_map(|p| [p.0, p.1]))
            .collect();
        Ok(Tensors::new()
            .with("crops", Tensor::new(&[count, height, widest, 3], &crops)?)
            .with("widths", Tensor::new(&[count], &widths)?)
            .with("boxes", Tensor::new(&[count, 4, 2], &boxes)?))
    }
}

aimass_sdk::export_sub_model!(Detect);
