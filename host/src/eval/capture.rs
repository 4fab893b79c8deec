//! A capture folder (see [`crate::capture`]) as an evaluation set: its
//! one-row requests that have a feedback label, with the input the model
//! was given, and what was served to them (live accuracy, per stage).

use super::{Dataset, StageCount, stage_counts};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Int64Type};
use arrow_array::{Array, RecordBatch};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What was served to the labelled requests of a capture.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Live {
    /// Labelled one-row requests.
    pub samples: u64,
    /// The share of them whose served label was right.
    pub accuracy: f64,
    /// Per stage that answered (when the model has a `stage` output).
    pub stages: Option<Vec<StageCount>>,
    /// Requests left out: without feedback, failed, or of several rows.
    pub skipped: u64,
}

/// One labelled request of a capture.
struct Labelled {
    id: String,
    input: Vec<f32>,
    label: usize,
    /// The label served.
    answered: usize,
    stage: Option<i64>,
}

/// A capture read as an evaluation set.
#[derive(Debug, Clone)]
pub struct Captured {
    /// The inputs and their feedback labels, in request-id order.
    pub dataset: Dataset,
    /// What was served to them.
    pub live: Live,
}

/// Reads `folder` (a model's capture: `requests/` and `feedback/`), taking
/// the model's input `input`.
pub fn read_capture(folder: &Path, input: &str) -> Result<Captured, String> {
    let mut labels: BTreeMap<String, i64> = BTreeMap::new();
    for batch in batches(&folder.join(crate::capture::FEEDBACK))? {
        let ids = string_column(&batch, "id")?;
        let Some(label) = batch.column_by_name("label") else {
            continue;
        };
        let label = label
            .as_primitive_opt::<Int64Type>()
            .ok_or("feedback column `label` is not int64")?;
        for row in 0..batch.num_rows() {
            // A later file (or row) corrects an earlier one.
            if label.is_valid(row) {
                labels.insert(ids.value(row).to_string(), label.value(row));
            }
        }
    }
    let column = crate::capture::input_column(input);
    let mut rows: Vec<Labelled> = Vec::new();
    let mut skipped = 0;
    let mut width = None;
    // Earlier schemas' folders count too, where they hold what eval reads.
    let mut requests = Vec::new();
    let mut datasets = crate::capture::request_datasets(folder);
    let current = datasets
        .pop()
        .unwrap_or_else(|| folder.join(crate::capture::REQUESTS));
    for dataset in &datasets {
        for batch in batches(dataset)? {
            let label = crate::capture::output_column("label");
            if batch.column_by_name(&column).is_some() && batch.column_by_name(&label).is_some() {
                requests.push(batch);
            } else {
                skipped += batch.num_rows() as u64;
            }
        }
    }
    requests.extend(batches(&current)?);
    if requests.is_empty() {
        return Err(format!(
            "{} holds no capture files",
            folder.join(crate::capture::REQUESTS).display()
        ));
    }
    for batch in &requests {
        let ids = string_column(batch, "id")?;
        let errors = string_column(batch, "error")?;
        let inputs = batch
            .column_by_name(&column)
            .ok_or_else(|| {
                format!("the capture has no `{column}`: capture the model's inputs (inputs = true)")
            })?
            .as_list_opt::<i32>()
            .ok_or_else(|| format!("`{column}` is not a list column"))?;
        let served = batch
            .column_by_name(&crate::capture::output_column("label"))
            .ok_or("the capture has no `output:label`: capture the model's outputs")?
            .as_list_opt::<i32>()
            .ok_or("`output:label` is not a list column")?;
        let stages = batch
            .column_by_name(&crate::capture::output_column("stage"))
            .and_then(|c| c.as_list_opt::<i32>());
        for row in 0..batch.num_rows() {
            let label = labels.get(ids.value(row)).copied();
            let one_row = served.is_valid(row) && served.value(row).len() == 1;
            let (Some(label), true, false) = (label, one_row, errors.is_valid(row)) else {
                skipped += 1;
                continue;
            };
            let values = inputs.value(row);
            let values = values
                .as_primitive_opt::<Float32Type>()
                .ok_or_else(|| format!("`{column}` is not FP32: eval feeds FP32 rows"))?;
            if *width.get_or_insert(values.len()) != values.len() {
                return Err(format!(
                    "`{column}` has rows of {} and of {} values",
                    width.unwrap_or(0),
                    values.len()
                ));
            }
            let label = usize::try_from(label).map_err(|_| {
                format!("request `{}`: label {label} is not a class", ids.value(row))
            })?;
            let first = |list: &arrow_array::ListArray| {
                list.value(row)
                    .as_primitive_opt::<Int64Type>()
                    .and_then(|v| (!v.is_empty()).then(|| v.value(0)))
            };
            let answered = first(served)
                .and_then(|l| usize::try_from(l).ok())
                .unwrap_or(usize::MAX);
            let stage = stages.filter(|s| s.is_valid(row)).and_then(first);
            rows.push(Labelled {
                id: ids.value(row).to_string(),
                input: values.values().to_vec(),
                label,
                answered,
                stage,
            });
        }
    }
    if rows.is_empty() {
        return Err(format!(
            "no request in {} has a feedback label ({skipped} requests without one, failed or \
             of several rows): send feedback (POST /v2/models/MODEL/feedback) first",
            folder.display()
        ));
    }
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    let truth: Vec<usize> = rows.iter().map(|r| r.label).collect();
    let answered: Vec<usize> = rows.iter().map(|r| r.answered).collect();
    let right = truth.iter().zip(&answered).filter(|(t, a)| t == a).count();
    let stages: Option<Vec<i64>> = rows.iter().map(|r| r.stage).collect();
    let live = Live {
        samples: rows.len() as u64,
        accuracy: right as f64 / rows.len() as f64,
        stages: stages.map(|s| stage_counts(&s, &truth, &answered)),
        skipped,
    };
    Ok(Captured {
        dataset: Dataset {
            features: width.unwrap_or(0),
            rows: rows.into_iter().map(|r| (r.input, r.label)).collect(),
        },
        live,
    })
}

fn string_column<'a>(
    batch: &'a RecordBatch,
    name: &str,
) -> Result<&'a arrow_array::StringArray, String> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or_else(|| format!("the capture has no text column `{name}`"))
}

/// Every record batch of the Parquet files in `folder`, oldest file first.
fn batches(folder: &Path) -> Result<Vec<RecordBatch>, String> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(folder) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.extension().is_some_and(|e| e == "parquet")
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect(),
        Err(_) => return Ok(Vec::new()),
    };
    files.sort();
    let mut all = Vec::new();
    for path in files {
        let failed = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
        let file = std::fs::File::open(&path).map_err(|e| failed(&e))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.build())
            .map_err(|e| failed(&e))?;
        for batch in reader {
            all.push(batch.map_err(|e| failed(&e))?);
        }
    }
    Ok(all)
}
