//! `aimass eval` on a model that reads text off images: a folder of images
//! with `labels.json` (what `examples/ocr/make_pages.py` writes) in; the
//! model's `text` (BYTES) and `boxes` out; detection recall and precision at
//! IoU 0.5, character error rate, exact lines (as printed and ignoring
//! spaces), each cascade stage's share of lines, and latency per image.

use super::{Latency, latency};
use crate::graph::{Request, Served};
use crate::tensor::Dtype;
use crate::tensor::Tensor;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// A labelled page.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Page {
    file: String,
    lines: Vec<Line>,
}

/// A true line: its text and corners, clockwise from the top-left.
#[derive(Debug, Deserialize)]
struct Line {
    text: String,
    #[serde(rename = "box")]
    corners: [[f32; 2]; 4],
}

/// What reading a labelled folder found.
#[derive(Debug, Clone, Serialize)]
pub struct TextReport {
    /// The model.
    pub model: String,
    /// The folder.
    pub data: String,
    /// Images read.
    pub images: usize,
    /// True lines.
    pub lines: usize,
    /// Lines the model found.
    pub found: usize,
    /// True lines matched by a found one (IoU ≥ 0.5) / true lines.
    pub recall: f64,
    /// Found lines matching a true one / found lines.
    pub precision: f64,
    /// Character edits (Levenshtein) over true characters, a missed line
    /// counting all of its characters.
    pub cer: f64,
    /// True lines read exactly.
    pub exact: f64,
    /// True lines read exactly once spaces are ignored.
    pub exact_ignoring_spaces: f64,
    /// Each cascade stage's share of the found lines, when there is one.
    pub stages: Option<Vec<(i64, f64)>>,
    /// Time per image.
    pub latency: Latency,
}

/// True when `folder` is a labelled image set (it holds `labels.json`).
pub fn is_text_set(folder: &Path) -> bool {
    folder.join("labels.json").is_file()
}

/// Reads every image of `folder` with `model` and scores the answers.
pub async fn evaluate_text(model: &Arc<Served>, folder: &Path) -> Result<TextReport, String> {
    let labels = folder.join("labels.json");
    let pages: Vec<Page> = serde_json::from_slice(
        &std::fs::read(&labels).map_err(|e| format!("cannot read {}: {e}", labels.display()))?,
    )
    .map_err(|e| format!("{}: {e}", labels.display()))?;
    let input = match model.signature.inputs.as_slice() {
        [input] if input.dtype == Dtype::Bytes => input.name.clone(),
        _ => {
            return Err(format!(
                "`{}` does not take one BYTES input (an encoded image)",
                model.name
            ));
        }
    };
    let mut totals = Totals::default();
    let mut micros = Vec::with_capacity(pages.len());
    for page in &pages {
        let path = folder.join(&page.file);
        let image = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let tensor = Tensor::from_strings(vec![1], &[image]).map_err(|e| e.to_string())?;
        let request = Request {
            inputs: vec![(input.clone(), tensor)],
            ..Request::default()
        };
        let started = Instant::now();
        let response = model
            .run(request)
            .await
            .map_err(|e| format!("{}: {e}", page.file))?;
        micros.push(started.elapsed().as_secs_f64() * 1e6);
        let output = |name: &str| {
            response
                .outputs
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| t)
        };
        let texts: Vec<String> = output("text")
            .filter(|t| t.dtype() == Dtype::Bytes)
            .ok_or_else(|| format!("`{}` returned no BYTES output `text`", model.name))?
            .strings()
            .iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect();
        let boxes = output("boxes")
            .and_then(|t| t.f32s().ok())
            .filter(|b| b.len() == texts.len() * 8)
            .ok_or_else(|| format!("`{}` returned no FP32 `boxes` [lines, 4, 2]", model.name))?;
        let found: Vec<([f32; 4], &str)> = boxes
            .chunks_exact(8)
            .zip(&texts)
            .map(|(b, t)| (bounds(b.chunks_exact(2).map(|p| [p[0], p[1]])), t.as_str()))
            .collect();
        if let Some(stages) = output("stage").and_then(|t| t.i64s().ok()) {
            totals.stages.extend(stages);
        }
        totals.add_page(page, &found);
    }
    Ok(totals.report(model, folder, pages.len(), &mut micros))
}

#[derive(Default)]
struct Totals {
    lines: usize,
    found: usize,
    matched: usize,
    true_chars: usize,
    edits: usize,
    exact: usize,
    exact_no_spaces: usize,
    stages: Vec<i64>,
}

impl Totals {
    fn add_page(&mut self, page: &Page, found: &[([f32; 4], &str)]) {
        self.lines += page.lines.len();
        self.found += found.len();
        let truth: Vec<[f32; 4]> = page
            .lines
            .iter()
            .map(|l| bounds(l.corners.iter().copied()))
            .collect();
        // Greedy matching, best overlap first.
        let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
        for (t, tb) in truth.iter().enumerate() {
            for (f, (fb, _)) in found.iter().enumerate() {
                let overlap = iou(tb, fb);
                if overlap >= 0.5 {
                    pairs.push((overlap, t, f));
                }
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
        let (mut used_t, mut used_f) = (vec![false; truth.len()], vec![false; found.len()]);
        let mut read: Vec<Option<&str>> = vec![None; truth.len()];
        for (_, t, f) in pairs {
            if !used_t[t] && !used_f[f] {
                used_t[t] = true;
                used_f[f] = true;
                read[t] = Some(found[f].1);
            }
        }
        for (line, got) in page.lines.iter().zip(read) {
            let want: Vec<char> = line.text.chars().collect();
            self.true_chars += want.len();
            match got {
                None => self.edits += want.len(),
                Some(got) => {
                    self.matched += 1;
                    let got_chars: Vec<char> = got.chars().collect();
                    self.edits += levenshtein(&want, &got_chars);
                    self.exact += usize::from(got == line.text);
                    let squeeze =
                        |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
                    self.exact_no_spaces += usize::from(squeeze(got) == squeeze(&line.text));
                }
            }
        }
    }

    fn report(
        self,
        model: &Served,
        folder: &Path,
        images: usize,
        micros: &mut [f64],
    ) -> TextReport {
        let share = |n: usize, d: usize| if d == 0 { 0.0 } else { n as f64 / d as f64 };
        let stages = (!self.stages.is_empty() && self.stages.len() == self.found).then(|| {
            let mut counts: std::collections::BTreeMap<i64, usize> = Default::default();
            for s in &self.stages {
                *counts.entry(*s).or_default() += 1;
            }
            counts
                .into_iter()
                .map(|(s, n)| (s, share(n, self.found)))
                .collect()
        });
        TextReport {
            model: model.name.clone(),
            data: folder.display().to_string(),
            images,
            lines: self.lines,
            found: self.found,
            recall: share(self.matched, self.lines),
            precision: share(self.matched, self.found),
            cer: share(self.edits, self.true_chars),
            exact: share(self.exact, self.lines),
            exact_ignoring_spaces: share(self.exact_no_spaces, self.lines),
            stages,
            latency: latency(micros),
        }
    }
}

/// The axis-aligned bounds (x0, y0, x1, y1) of some corners.
fn bounds(points: impl Iterator<Item = [f32; 2]>) -> [f32; 4] {
    points.fold([f32::MAX, f32::MAX, f32::MIN, f32::MIN], |b, [x, y]| {
        [b[0].min(x), b[1].min(y), b[2].max(x), b[3].max(y)]
    })
}

fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let area = |r: &[f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - inter;
    if union <= 0.0 { 0.0 } else { inter / union }
}

/// Edits (insertions, deletions, substitutions) from `a` to `b`.
fn levenshtein(a: &[char], b: &[char]) -> usize {
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// The report for a terminal.
pub fn render_text(r: &TextReport) -> String {
    let pct = |v: f64| format!("{:.1}%", v * 100.0);
    let mut out = format!(
        "{} on {} ({} images, {} lines; {} found)\n\
         detection   recall {}  precision {}  (IoU >= 0.5)\n\
         reading     CER {}  exact lines {}  exact ignoring spaces {}\n\
         latency     per image: mean {:.0} ms, p50 {:.0} ms, p99 {:.0} ms\n",
        r.model,
        r.data,
        r.images,
        r.lines,
        r.found,
        pct(r.recall),
        pct(r.precision),
        pct(r.cer),
        pct(r.exact),
        pct(r.exact_ignoring_spaces),
        r.latency.mean_us / 1000.0,
        r.latency.p50_us / 1000.0,
        r.latency.p99_us / 1000.0,
    );
    if let Some(stages) = &r.stages {
        let parts: Vec<String> = stages
            .iter()
            .map(|(s, share)| format!("stage {s}: {}", pct(*share)))
            .collect();
        out.push_str(&format!(
            "cascade     lines answered by {}\n",
            parts.join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_and_overlap() {
        let chars = |s: &str| s.chars().collect::<Vec<_>>();
        assert_eq!(levenshtein(&chars("kitten"), &chars("sitting")), 3);
        assert_eq!(levenshtein(&chars("文字"), &chars("文")), 1);
        assert_eq!(levenshtein(&chars(""), &chars("ab")), 2);
        let a = [0.0, 0.0, 10.0, 10.0];
        assert_eq!(iou(&a, &a), 1.0);
        assert!((iou(&a, &[5.0, 0.0, 15.0, 10.0]) - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(iou(&a, &[20.0, 20.0, 30.0, 30.0]), 0.0);
    }

    #[test]
    fn a_page_scores_recall_precision_and_errors() {
        let line = |text: &str, y: f32| Line {
            text: text.into(),
            corners: [[0.0, y], [100.0, y], [100.0, y + 20.0], [0.0, y + 20.0]],
        };
        let page = Page {
            file: "p.png".into(),
            lines: vec![
                line("hello world", 0.0),
                line("abc", 40.0),
                line("missed", 80.0),
            ],
        };
        let found = [
            ([1.0, 1.0, 99.0, 21.0], "helloworld"),
            ([0.0, 40.0, 100.0, 60.0], "abc"),
            ([0.0, 200.0, 50.0, 220.0], "ghost"),
        ];
        let mut totals = Totals::default();
        totals.add_page(&page, &found);
        assert_eq!((totals.lines, totals.found, totals.matched), (3, 3, 2));
        assert_eq!(totals.exact, 1);
        assert_eq!(totals.exact_no_spaces, 2);
        // One space missing, and "missed" (6 characters) not found.
        assert_eq!(totals.edits, 1 + 6);
        assert_eq!(totals.true_chars, 11 + 3 + 6);
    }
}
