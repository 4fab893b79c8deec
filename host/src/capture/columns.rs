//! Captured entries as Arrow record batches: the schema documented in the
//! README ("Capture"), one row per request (or feedback entry).
//!
//! A tensor becomes two list columns: its values, flattened row-major in
//! its own element type (bit for bit what was served), and its shape.

use super::{Feedback, Record};
use crate::config::CaptureConfig;
use crate::tensor::{Dtype, NamedTensor, Tensor};
use arrow_array::{
    ArrayRef, BinaryArray, BooleanArray, Float64Array, Int64Array, ListArray, RecordBatch,
    StringArray, TimestampMicrosecondArray, UInt64Array, make_array,
};
use arrow_buffer::{MutableBuffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_data::ArrayData;
use arrow_schema::{ArrowError, DataType, Field, Schema, TimeUnit};
use std::collections::HashMap;
use std::sync::Arc;

/// The field metadata key naming a column's Open Inference Protocol type.
pub const DTYPE_KEY: &str = "aimass:datatype";

/// The Arrow type a tensor's elements are stored as. BF16 has none: its
/// 16 bits are kept as UInt16 (the column's metadata says BF16). BYTES
/// elements are Binary (they need not be UTF-8).
pub fn arrow_type(dtype: Dtype) -> DataType {
    match dtype {
        Dtype::Bool => DataType::Boolean,
        Dtype::Int8 => DataType::Int8,
        Dtype::Int16 => DataType::Int16,
        Dtype::Uint16 => DataType::UInt16,
        Dtype::Uint32 => DataType::UInt32,
        Dtype::Uint64 => DataType::UInt64,
        Dtype::Bytes => DataType::Binary,
        Dtype::Fp16 => DataType::Float16,
        Dtype::Fp32 => DataType::Float32,
        Dtype::Fp64 => DataType::Float64,
        Dtype::Bf16 => DataType::UInt16,
        Dtype::Uint8 => DataType::UInt8,
        Dtype::Int32 => DataType::Int32,
        Dtype::Int64 => DataType::Int64,
    }
}

/// The columns of a request's tensors, by name and element type, in the
/// order they first appear.
pub type Layout = Vec<(String, Dtype)>;

/// A model or tensor name as one part of a column name: `:` (the parts'
/// separator) and `%` are percent-encoded, so that no name a plugin gives
/// its tensors (`y:shape`) can make a column another one already has
/// (`y`'s shape column).
pub fn column_part(name: &str) -> std::borrow::Cow<'_, str> {
    if !name.contains([':', '%']) {
        return name.into();
    }
    name.replace('%', "%25").replace(':', "%3A").into()
}

/// The column of input `name`.
pub fn input_column(name: &str) -> String {
    format!("input:{}", column_part(name))
}

/// The column of output `name`.
pub fn output_column(name: &str) -> String {
    format!("output:{}", column_part(name))
}

/// Each tensor of `record` with the name of its column.
fn tensors(record: &Record) -> Vec<(String, &Tensor)> {
    let mut all: Vec<(String, &Tensor)> = Vec::new();
    all.extend(record.inputs.iter().map(|(n, t)| (input_column(n), t)));
    all.extend(record.outputs.iter().map(|(n, t)| (output_column(n), t)));
    for (model, outputs) in &record.inner {
        let model = column_part(model);
        all.extend(
            outputs
                .iter()
                .map(|(n, t)| (format!("inner:{model}:{}", column_part(n)), t)),
        );
    }
    all
}

/// Adds `record`'s columns to `layout`; false when one of them is already
/// there with another element type (the record belongs in another file).
pub fn extend_layout(layout: &mut Layout, record: &Record) -> bool {
    let mut added = Vec::new();
    for (column, tensor) in tensors(record) {
        match layout.iter().find(|(name, _)| *name == column) {
            Some((_, dtype)) if *dtype != tensor.dtype() => return false,
            Some(_) => {}
            None => added.push((column, tensor.dtype())),
        }
    }
    for column in added {
        if !layout.iter().any(|(name, _)| *name == column.0) {
            layout.push(column);
        }
    }
    true
}

/// The columns of what `declared` says a capture under `config` keeps, in
/// the order the model declares them: every file of an unchanged model
/// then has the same columns, whichever tensors its requests happened to
/// carry (a tensor a request lacks is null).
pub fn declared_layout(declared: &super::Declared, config: &CaptureConfig) -> Layout {
    let mut layout = Layout::new();
    let mut add = |column: String, dtype: Dtype| {
        if !layout.iter().any(|(name, _)| *name == column) {
            layout.push((column, dtype));
        }
    };
    if config.inputs {
        for (name, dtype) in &declared.inputs {
            add(input_column(name), *dtype);
        }
    }
    if config.outputs {
        for (name, dtype) in &declared.outputs {
            add(output_column(name), *dtype);
        }
    }
    for (model, outputs) in &declared.inner {
        let model = column_part(model);
        for (name, dtype) in outputs {
            add(format!("inner:{model}:{}", column_part(name)), *dtype);
        }
    }
    layout
}

/// The bytes `record` adds to a file, roughly: its tensors and a little.
/// (On the request path: it names no column.)
pub fn record_bytes(record: &Record) -> u64 {
    let sum = |list: &[NamedTensor]| list.iter().map(|(_, t)| t.data().len()).sum::<usize>();
    let inner: usize = record.inner.iter().map(|(_, list)| sum(list)).sum();
    (sum(&record.inputs) + sum(&record.outputs) + inner + 64 + record.id.len()) as u64
}

/// One list column being filled, one entry per record.
struct ListColumn {
    values: MutableBuffer,
    offsets: Vec<i32>,
    valid: Vec<bool>,
    /// Where each BYTES element starts in `values`, plus the end.
    element_offsets: Vec<i32>,
}

impl ListColumn {
    fn new(rows: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        ListColumn {
            values: MutableBuffer::new(0),
            offsets,
            valid: Vec::with_capacity(rows),
            element_offsets: vec![0],
        }
    }

    /// Appends a tensor's elements as one list entry.
    fn push_tensor(&mut self, tensor: &Tensor) -> Result<(), ArrowError> {
        if tensor.dtype() != Dtype::Bytes {
            return self.push(tensor.data(), tensor.element_count());
        }
        let too_big = || ArrowError::ComputeError("a file holds at most 2 GiB of BYTES".into());
        let mut count = 0usize;
        for element in tensor.strings() {
            self.values.extend_from_slice(element);
            let end = i32::try_from(self.values.len()).map_err(|_| too_big())?;
            self.element_offsets.push(end);
            count += 1;
        }
        let last = *self.offsets.last().unwrap_or(&0);
        let next = i32::try_from(count)
            .ok()
            .and_then(|n| last.checked_add(n))
            .ok_or_else(too_big)?;
        self.offsets.push(next);
        self.valid.push(true);
        Ok(())
    }

    fn push(&mut self, bytes: &[u8], elements: usize) -> Result<(), ArrowError> {
        let last = *self.offsets.last().unwrap_or(&0);
        let next = i32::try_from(elements)
            .ok()
            .and_then(|n| last.checked_add(n))
            .ok_or_else(|| ArrowError::ComputeError("a file holds at most 2^31 values".into()))?;
        self.values.extend_from_slice(bytes);
        self.offsets.push(next);
        self.valid.push(true);
        Ok(())
    }

    fn push_null(&mut self) {
        let last = *self.offsets.last().unwrap_or(&0);
        self.offsets.push(last);
        self.valid.push(false);
    }

    fn finish(self, element: DataType) -> Result<ArrayRef, ArrowError> {
        let elements = *self.offsets.last().unwrap_or(&0) as usize;
        let values: ArrayRef = match element {
            DataType::Binary => Arc::new(BinaryArray::try_new(
                OffsetBuffer::new(ScalarBuffer::from(self.element_offsets)),
                self.values.into(),
                None,
            )?),
            // Arrow packs booleans into bits; a tensor holds a byte each.
            DataType::Boolean => Arc::new(BooleanArray::from_iter(
                self.values.as_slice().iter().map(|&b| Some(b != 0)),
            )),
            _ => make_array(
                ArrayData::builder(element.clone())
                    .len(elements)
                    .add_buffer(self.values.into())
                    .build()?,
            ),
        };
        let nulls = self
            .valid
            .iter()
            .any(|v| !v)
            .then(|| NullBuffer::from(self.valid));
        Ok(Arc::new(ListArray::try_new(
            Arc::new(Field::new_list_field(element, false)),
            OffsetBuffer::new(ScalarBuffer::from(self.offsets)),
            values,
            nulls,
        )?))
    }
}

fn list_field(name: &str, element: DataType, dtype: Option<Dtype>) -> Field {
    let field = Field::new(
        name,
        DataType::List(Arc::new(Field::new_list_field(element, false))),
        true,
    );
    match dtype {
        Some(dtype) => field.with_metadata(HashMap::from([(
            DTYPE_KEY.to_string(),
            dtype.name().to_string(),
        )])),
        None => field,
    }
}

fn time_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The record batch of `records`, whose tensors fit `layout`.
pub fn requests(
    model: &str,
    records: &[Record],
    layout: &Layout,
) -> Result<RecordBatch, ArrowError> {
    let rows = records.len();
    let mut fields = vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("time", time_type(), false),
        Field::new("model", DataType::Utf8, false),
        Field::new("version", DataType::UInt64, false),
        Field::new("latency_us", DataType::UInt64, false),
        Field::new("error", DataType::Utf8, true),
    ];
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(records.iter().map(|r| &r.id))),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(records.iter().map(|r| r.time_us))
                .with_timezone("UTC"),
        ),
        Arc::new(StringArray::from_iter_values(records.iter().map(|_| model))),
        Arc::new(UInt64Array::from_iter_values(
            records.iter().map(|r| r.version),
        )),
        Arc::new(UInt64Array::from_iter_values(
            records.iter().map(|r| r.latency_us),
        )),
        Arc::new(StringArray::from_iter(
            records.iter().map(|r| r.error.as_deref()),
        )),
    ];
    let index: HashMap<&str, usize> = layout
        .iter()
        .enumerate()
        .map(|(i, (name, _))| (name.as_str(), i))
        .collect();
    let mut lists: Vec<(ListColumn, ListColumn)> = layout
        .iter()
        .map(|_| (ListColumn::new(rows), ListColumn::new(rows)))
        .collect();
    let mut filled = vec![false; layout.len()];
    let mut shape = Vec::new();
    for record in records {
        filled.fill(false);
        for (name, tensor) in tensors(record) {
            let Some(&at) = index.get(name.as_str()).filter(|&&at| !filled[at]) else {
                continue;
            };
            let (values, shapes) = &mut lists[at];
            values.push_tensor(tensor)?;
            shape.clear();
            shape.extend(
                tensor
                    .dims()
                    .iter()
                    .flat_map(|&d| i64::from(d).to_le_bytes()),
            );
            shapes.push(&shape, tensor.dims().len())?;
            filled[at] = true;
        }
        for (at, (values, shapes)) in lists.iter_mut().enumerate() {
            if !filled[at] {
                values.push_null();
                shapes.push_null();
            }
        }
    }
    for ((column, dtype), (values, shapes)) in layout.iter().zip(lists) {
        fields.push(list_field(column, arrow_type(*dtype), Some(*dtype)));
        columns.push(values.finish(arrow_type(*dtype))?);
        fields.push(list_field(
            &format!("{column}:shape"),
            DataType::Int64,
            None,
        ));
        columns.push(shapes.finish(DataType::Int64)?);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

/// The record batch of feedback entries.
pub fn feedback(entries: &[Feedback]) -> Result<RecordBatch, ArrowError> {
    let schema = Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("time", time_type(), false),
        Field::new("label", DataType::Int64, true),
        Field::new("label_text", DataType::Utf8, true),
        Field::new("reward", DataType::Float64, true),
    ]);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(entries.iter().map(|e| &e.id))),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(entries.iter().map(|e| e.time_us))
                .with_timezone("UTC"),
        ),
        Arc::new(Int64Array::from_iter(entries.iter().map(|e| e.label))),
        Arc::new(StringArray::from_iter(
            entries.iter().map(|e| e.label_text.as_deref()),
        )),
        Arc::new(Float64Array::from_iter(entries.iter().map(|e| e.reward))),
    ];
    RecordBatch::try_new(Arc::new(schema), columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;

    fn record(id: &str, rows: u32, with_inner: bool) -> Record {
        let values: Vec<f32> = (0..rows * 2).map(|v| v as f32 + 0.5).collect();
        let x = Tensor::from_f32(vec![rows, 2], &values).unwrap();
        let label = Tensor::from_i64(vec![rows], &vec![7; rows as usize]).unwrap();
        Record {
            id: id.into(),
            time_us: 1_700_000_000_000_000,
            version: 2,
            latency_us: 42,
            error: None,
            inputs: vec![("x".into(), x.clone())],
            outputs: vec![("label".into(), label)],
            inner: if with_inner {
                vec![("head".into(), vec![("y".into(), x)])]
            } else {
                vec![]
            },
        }
    }

    #[test]
    fn tensors_become_value_and_shape_columns_with_nulls_where_missing() {
        let records = vec![record("a", 2, true), record("b", 1, false)];
        let mut layout = Layout::new();
        for r in &records {
            assert!(extend_layout(&mut layout, r));
        }
        let batch = requests("m", &records, &layout).unwrap();
        let names: Vec<String> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(
            names,
            [
                "id",
                "time",
                "model",
                "version",
                "latency_us",
                "error",
                "input:x",
                "input:x:shape",
                "output:label",
                "output:label:shape",
                "inner:head:y",
                "inner:head:y:shape"
            ]
        );
        let inner = batch
            .column_by_name("inner:head:y")
            .unwrap()
            .as_any()
            .downcast_ref::<ListArray>()
            .unwrap();
        assert!(inner.is_valid(0) && inner.is_null(1));
        let x = batch
            .column_by_name("input:x")
            .unwrap()
            .as_any()
            .downcast_ref::<ListArray>()
            .unwrap();
        let second = x.value(1);
        let second = second
            .as_any()
            .downcast_ref::<arrow_array::Float32Array>()
            .unwrap();
        assert_eq!(second.values().to_vec(), vec![0.5, 1.5]);
        // Another type under a known name belongs in another file.
        let mut other = record("c", 1, false);
        other.inputs[0].1 = Tensor::from_i64(vec![1], &[1]).unwrap();
        assert!(!extend_layout(&mut layout, &other));
    }

    #[test]
    fn no_tensor_or_model_name_makes_a_column_twice() {
        let mut r = record("a", 1, false);
        let y = r.outputs[0].1.clone();
        // Names that would spell another tensor's shape column, another
        // model's inner column, or an encoded name.
        r.outputs = vec![
            ("y".into(), y.clone()),
            ("y:shape".into(), y.clone()),
            ("y%3Ashape".into(), y.clone()),
        ];
        r.inner = vec![
            ("m".into(), vec![("a:b".into(), y.clone())]),
            ("m:a".into(), vec![("b".into(), y.clone())]),
        ];
        let mut layout = Layout::new();
        assert!(extend_layout(&mut layout, &r));
        let batch = requests("m", &[r], &layout).unwrap();
        let names: Vec<String> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let unique: std::collections::HashSet<&String> = names.iter().collect();
        assert_eq!(unique.len(), names.len(), "{names:?}");
        assert!(names.contains(&"output:y%3Ashape".to_string()), "{names:?}");
        assert!(
            names.contains(&"output:y%253Ashape".to_string()),
            "{names:?}"
        );
        assert!(names.contains(&"inner:m%3Aa:b".to_string()), "{names:?}");
    }
}
