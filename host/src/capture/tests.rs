//! The capture sink end to end: rows per file, the queue's bound, row
//! groups, columns per dataset folder, retention.

use super::*;
use crate::tensor::Tensor;

fn config(text: &str) -> CaptureConfig {
    toml::from_str(&format!("folder = \"capture\"\n{text}")).unwrap()
}

fn record(id: &str, values: usize) -> Record {
    let x = Tensor::from_f32(vec![1, values as u32], &vec![1.0; values]).unwrap();
    Record {
        id: id.into(),
        time_us: now_us(),
        version: 1,
        latency_us: 5,
        error: None,
        inputs: vec![("x".into(), x)],
        outputs: vec![],
        inner: vec![],
    }
}

fn parquet_rows(dir: &std::path::Path) -> Vec<usize> {
    let mut rows = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    for path in files {
        assert!(
            path.extension().is_some_and(|e| e == "parquet"),
            "{}",
            path.display()
        );
        let file = std::fs::File::open(&path).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        rows.push(reader.map(|b| b.unwrap().num_rows()).sum());
    }
    rows
}

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("aimass-capture-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn files_hold_at_most_their_rows_and_closing_writes_the_rest() {
    let folder = temp("rows");
    let sink = Sink::start(
        "m",
        &config("max_file_rows = 4\nflush_ms = 60000"),
        folder.clone(),
        Declared::default(),
    );
    for i in 0..10 {
        assert!(sink.offer(record(&format!("r{i}"), 3)));
    }
    assert!(sink.offer_feedback(Feedback {
        id: "r1".into(),
        time_us: now_us(),
        label: Some(2),
        label_text: None,
        reward: None,
    }));
    sink.close();
    assert_eq!(parquet_rows(&folder.join("m").join(REQUESTS)), [4, 4, 2]);
    assert_eq!(parquet_rows(&folder.join("m").join(FEEDBACK)), [1]);
    // Closed: what comes later is dropped, not queued.
    assert!(!sink.offer(record("late", 3)));
    std::fs::remove_dir_all(&folder).unwrap();
}

#[test]
fn the_queue_is_bounded_in_bytes() {
    let folder = temp("bytes");
    let sink = Sink::start(
        "m",
        &config("max_queue_bytes = 1000"),
        folder.clone(),
        Declared::default(),
    );
    // 4 000 bytes of tensors: over the budget on its own.
    assert!(!sink.offer(record("big", 1000)));
    assert!(sink.offer(record("small", 10)));
    sink.close();
    assert_eq!(parquet_rows(&folder.join("m").join(REQUESTS)), [1]);
    std::fs::remove_dir_all(&folder).unwrap();
}

#[test]
fn what_the_writer_gathers_stays_within_the_bound_until_written() {
    let folder = temp("held");
    // Each record is 4 064 + 64 + id bytes; the writer drains the queue
    // every 50 ms but writes a file only at the flush a minute later.
    let sink = Sink::start(
        "m",
        &config(
            "max_queue_bytes = 100000
flush_ms = 60000",
        ),
        folder.clone(),
        Declared::default(),
    );
    let mut taken = 0;
    for i in 0..100 {
        taken += usize::from(sink.offer(record(&format!("r{i:02}"), 1016)));
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // Drained into the file being gathered, they still count, beside
    // the room kept for encoding a row group (2 × 12 500 bytes): 18 fit.
    assert_eq!(taken, 18);
    sink.close();
    assert_eq!(parquet_rows(&folder.join("m").join(REQUESTS)), [18]);
    std::fs::remove_dir_all(&folder).unwrap();
}

#[test]
fn a_file_is_written_a_row_group_at_a_time() {
    let folder = temp("groups");
    // Row groups of at most 1/8 of the bound: 12 500 bytes, 3 records.
    let sink = Sink::start(
        "m",
        &config(
            "max_queue_bytes = 100000
flush_ms = 60000",
        ),
        folder.clone(),
        Declared::default(),
    );
    for i in 0..10 {
        assert!(sink.offer(record(&format!("r{i}"), 1016)));
    }
    sink.close();
    let dir = folder.join("m").join(REQUESTS);
    let path = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let reader =
        parquet::file::reader::SerializedFileReader::new(std::fs::File::open(path).unwrap())
            .unwrap();
    use parquet::file::reader::FileReader;
    let groups: Vec<i64> = reader
        .metadata()
        .row_groups()
        .iter()
        .map(|g| g.num_rows())
        .collect();
    assert_eq!(groups, [3, 3, 3, 1]);
    std::fs::remove_dir_all(&folder).unwrap();
}

fn schemas(dir: &std::path::Path) -> Vec<arrow_schema::SchemaRef> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|path| {
            let file = std::fs::File::open(path).unwrap();
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                .unwrap()
                .schema()
                .clone()
        })
        .collect()
}

fn declared(inner: bool) -> Declared {
    use crate::tensor::Dtype;
    Declared {
        inputs: vec![("x".into(), Dtype::Fp32)],
        outputs: vec![("y".into(), Dtype::Int64)],
        inner: if inner {
            vec![("head".into(), vec![("z".into(), Dtype::Fp32)])]
        } else {
            vec![]
        },
    }
}

#[test]
fn every_file_has_the_declared_columns_whatever_its_requests_carried() {
    let folder = temp("declared");
    let sink = Sink::start(
        "m",
        &config("max_file_rows = 2\ninner = [\"head\"]"),
        folder.clone(),
        declared(true),
    );
    for i in 0..6 {
        let mut r = record(&format!("r{i}"), 3);
        if i == 5 {
            // Only the last file's requests reach the inner model.
            let z = r.inputs[0].1.clone();
            r.inner = vec![("head".into(), vec![("z".into(), z)])];
        }
        assert!(sink.offer(r));
    }
    sink.close();
    let found = schemas(&folder.join("m").join(REQUESTS));
    assert_eq!(found.len(), 3);
    for schema in &found {
        assert_eq!(schema.fields(), found[0].fields());
        for column in ["input:x", "output:y", "inner:head:z"] {
            assert!(schema.field_with_name(column).is_ok(), "{column}: {schema}");
        }
    }
    std::fs::remove_dir_all(&folder).unwrap();
}

#[test]
fn new_columns_move_the_earlier_files_to_a_folder_of_their_own() {
    let folder = temp("schemas");
    let model = folder.join("m");
    let run = |declared: Declared, records: usize| {
        let sink = Sink::start("m", &config("max_file_rows = 1"), folder.clone(), declared);
        for i in 0..records {
            assert!(sink.offer(record(&format!("r{i}"), 2)));
        }
        sink.close();
    };
    run(declared(false), 3);
    // Restarted with the same columns: the same folder goes on.
    run(declared(false), 1);
    assert_eq!(schemas(&model.join(REQUESTS)).len(), 4);
    assert_eq!(request_datasets(&model), [model.join(REQUESTS)]);
    // An inner model's outputs kept from now on: new columns.
    run(declared(true), 2);
    let datasets = request_datasets(&model);
    assert_eq!(datasets.len(), 2, "{datasets:?}");
    let earlier = schemas(&datasets[0]);
    let now = schemas(&datasets[1]);
    assert_eq!((earlier.len(), now.len()), (4, 2));
    for schema in &earlier {
        assert_eq!(schema.fields(), earlier[0].fields());
        assert!(schema.field_with_name("inner:head:z").is_err());
    }
    for schema in &now {
        assert_eq!(schema.fields(), now[0].fields());
        assert!(schema.field_with_name("inner:head:z").is_ok());
    }
    std::fs::remove_dir_all(&folder).unwrap();
}

#[test]
fn retention_keeps_the_newest_files_under_the_limit() {
    let folder = temp("retention");
    let sink = Sink::start(
        "m",
        &config("max_file_rows = 1\nmax_total_bytes = 6000"),
        folder.clone(),
        Declared::default(),
    );
    for i in 0..20 {
        assert!(sink.offer(record(&format!("r{i:02}"), 100)));
    }
    sink.close();
    let dir = folder.join("m").join(REQUESTS);
    let sizes: Vec<u64> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.metadata().unwrap().len())
        .collect();
    assert!(sizes.iter().sum::<u64>() <= 6000, "{sizes:?}");
    assert!(!sizes.is_empty() && sizes.len() < 20, "{sizes:?}");
    std::fs::remove_dir_all(&folder).unwrap();
}
