//! `aimass eval`: runs a model over a labelled CSV, a fixed number of
//! samples per request, and reports how well it classifies and how fast it
//! answers.

mod capture;
mod report;
mod scores;
mod text;

pub use capture::{Captured, Live, read_capture};
pub use report::render;
pub use scores::{ClassScores, Scores, roc_auc, score};
pub use text::{TextReport, evaluate_text, is_text_set, render_text};

use crate::graph::{Request, Served};
use crate::tensor::Dtype;
use crate::tensor::Tensor;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// A labelled set: feature rows and their classes.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Features per row.
    pub features: usize,
    /// Each row's features and label.
    pub rows: Vec<(Vec<f32>, usize)>,
}

impl Dataset {
    /// Reads a CSV with a header: numeric feature columns and a `label`
    /// column of class numbers (0, 1, ...).
    pub fn read_csv(path: &Path) -> Result<Dataset, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut lines = text.lines();
        let header: Vec<&str> = lines
            .next()
            .ok_or_else(|| format!("{} is empty", path.display()))?
            .split(',')
            .map(str::trim)
            .collect();
        let label_column = header
            .iter()
            .position(|&c| c == "label")
            .ok_or_else(|| format!("{}: the header has no `label` column", path.display()))?;
        let mut rows = Vec::new();
        for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let at = || format!("{}:{}", path.display(), i + 2);
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            if fields.len() != header.len() {
                return Err(format!(
                    "{}: {} fields, the header has {}",
                    at(),
                    fields.len(),
                    header.len()
                ));
            }
            let mut features = Vec::with_capacity(fields.len() - 1);
            let mut label = 0;
            for (column, field) in fields.iter().enumerate() {
                if column == label_column {
                    label = field
                        .parse()
                        .map_err(|_| format!("{}: label `{field}` is not a class number", at()))?;
                } else {
                    features.push(field.parse().map_err(|_| {
                        format!("{}: `{}` is `{field}`, not a number", at(), header[column])
                    })?);
                }
            }
            rows.push((features, label));
        }
        if rows.is_empty() {
            return Err(format!("{} has no rows", path.display()));
        }
        Ok(Dataset {
            features: header.len() - 1,
            rows,
        })
    }
}

/// What an evaluation found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// The model.
    pub model: String,
    /// The data file.
    pub data: String,
    /// Classification scores.
    pub scores: Scores,
    /// Samples per request (the last request may hold fewer).
    pub batch: usize,
    /// Time per sample.
    pub latency: Latency,
    /// Per stage of a cascade (from its `stage` output), when it has one.
    pub stages: Option<Vec<StageCount>>,
    /// What was served to the same samples, when they came from a capture.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live: Option<Live>,
}

/// Per-sample latency, in microseconds: each request's whole run (no HTTP)
/// divided by its samples, so batch sizes compare as cost per sample.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Latency {
    /// Mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
}

/// How many samples one stage answered, and how well.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StageCount {
    /// The stage (0 is the first).
    pub stage: i64,
    /// Samples it answered.
    pub samples: u64,
    /// Its accuracy on them.
    pub accuracy: f64,
}

/// Runs `model` on every row of `data`, `batch` rows per request, with a
/// progress bar on a terminal.
pub async fn evaluate(
    model: &Arc<Served>,
    data: &Dataset,
    data_name: &str,
    batch: usize,
) -> Result<Report, String> {
    let input = check_model(model, data.features)?;
    if batch == 0 {
        return Err("the batch size must be at least 1".into());
    }
    let classes_from_model = model
        .signature
        .outputs
        .iter()
        .find(|o| o.name == "probabilities")
        .and_then(|o| o.shape.get(1).copied())
        .filter(|&c| c > 0)
        .map(|c| c as usize);
    let progress = indicatif::ProgressBar::new(data.rows.len() as u64).with_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} {eta}")
            .map_err(|e| e.to_string())?,
    );
    progress.set_message(format!("eval {}", model.name));
    let (mut predicted, mut probabilities, mut stages, mut micros) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for chunk in data.rows.chunks(batch) {
        let rows = chunk.len();
        let features: Vec<f32> = chunk.iter().flat_map(|(f, _)| f.iter().copied()).collect();
        let tensor = Tensor::from_f32(vec![rows as u32, data.features as u32], &features)
            .map_err(|e| e.to_string())?;
        let request = Request {
            inputs: vec![(input.clone(), tensor)],
            ..Request::default()
        };
        let started = Instant::now();
        let response = model.run(request).await.map_err(|e| e.to_string())?;
        micros.push(started.elapsed().as_secs_f64() * 1e6 / rows as f64);
        let output = |name: &str| {
            response
                .outputs
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| t)
        };
        let labels = output("label")
            .and_then(|t| t.i64s().ok())
            .filter(|l| l.len() == rows)
            .ok_or_else(|| format!("the model returned no `label` per row ({rows} rows)"))?;
        predicted.extend(
            labels
                .iter()
                .map(|&l| usize::try_from(l).unwrap_or(usize::MAX)),
        );
        if let Some(p) = output("probabilities") {
            let values = p.f32s().map_err(|e| format!("probabilities {e}"))?;
            if values.len() % rows != 0 {
                return Err(format!(
                    "`probabilities` holds {} values for {rows} rows",
                    values.len()
                ));
            }
            probabilities.extend(values.chunks(values.len() / rows).map(<[f32]>::to_vec));
        }
        if let Some(stage) = output("stage").and_then(|t| t.i64s().ok()) {
            stages.extend(stage);
        }
        progress.inc(rows as u64);
    }
    progress.finish_and_clear();

    let truth: Vec<usize> = data.rows.iter().map(|(_, label)| *label).collect();
    let classes = classes_from_model.unwrap_or_else(|| {
        truth
            .iter()
            .chain(predicted.iter().filter(|&&p| p != usize::MAX))
            .max()
            .map_or(0, |m| m + 1)
    });
    let probabilities = (probabilities.len() == truth.len()).then_some(probabilities);
    let scores = score(&truth, &predicted, probabilities.as_deref(), classes);
    let stages = (stages.len() == truth.len()).then(|| stage_counts(&stages, &truth, &predicted));
    Ok(Report {
        model: model.name.clone(),
        data: data_name.to_string(),
        scores,
        batch,
        latency: latency(&mut micros),
        stages,
        live: None,
    })
}

/// The name of the model's one input (eval feeds one FP32 tensor).
pub fn input_name(model: &Served) -> Result<String, String> {
    match model.signature.inputs.as_slice() {
        [input] => Ok(input.name.clone()),
        inputs => Err(format!(
            "`{}` takes {} inputs; eval feeds one (FP32 [N, features])",
            model.name,
            inputs.len()
        )),
    }
}

/// The model's one input, which must take FP32 rows of `features` values.
fn check_model(model: &Served, features: usize) -> Result<String, String> {
    let [input] = model.signature.inputs.as_slice() else {
        return Err(format!(
            "`{}` takes {} inputs; eval feeds one (FP32 [N, features])",
            model.name,
            model.signature.inputs.len()
        ));
    };
    let width = input.shape.get(1).copied();
    if input.dtype != Dtype::Fp32
        || input.shape.len() != 2
        || width.is_some_and(|w| w >= 0 && w as usize != features)
    {
        return Err(format!(
            "`{}` takes `{}` as {} {}, but the data has {features} feature columns (FP32)",
            model.name,
            input.name,
            input.dtype,
            crate::nn::shape_text(&input.shape)
        ));
    }
    if !model
        .signature
        .outputs
        .iter()
        .any(|o| o.name == "label" && o.dtype == Dtype::Int64)
    {
        return Err(format!(
            "`{}` has no INT64 output `label` to score",
            model.name
        ));
    }
    Ok(input.name.clone())
}

pub(crate) fn stage_counts(
    stages: &[i64],
    truth: &[usize],
    predicted: &[usize],
) -> Vec<StageCount> {
    let mut by_stage: std::collections::BTreeMap<i64, (u64, u64)> = Default::default();
    for ((&stage, t), p) in stages.iter().zip(truth).zip(predicted) {
        let entry = by_stage.entry(stage).or_default();
        entry.0 += 1;
        entry.1 += u64::from(t == p);
    }
    by_stage
        .into_iter()
        .map(|(stage, (samples, right))| StageCount {
            stage,
            samples,
            accuracy: right as f64 / samples as f64,
        })
        .collect()
}

pub(crate) fn latency(micros: &mut [f64]) -> Latency {
    micros.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let index = ((micros.len() as f64 * q).ceil() as usize).saturating_sub(1);
        micros
            .get(index.min(micros.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    };
    Latency {
        mean_us: micros.iter().sum::<f64>() / micros.len().max(1) as f64,
        p50_us: at(0.5),
        p99_us: at(0.99),
    }
}
