//! `aimass eval` on the digits example: every model's accuracy within two
//! samples (2/360) of what train.py measured with numpy/scikit-learn, and
//! the cascade at least as accurate as its student while the student
//! answers most samples.

use aimass::eval::{Dataset, Report, evaluate};
use aimass_tests::{digits_dir, open_config};

/// Two of the 360 test samples: tract and scikit-learn may round a
/// borderline sample differently.
const TOLERANCE: f64 = 2.0 / 360.0;

fn reported(key: &str) -> f64 {
    let text = std::fs::read_to_string(digits_dir().join("models/metrics.json")).unwrap();
    let metrics: serde_json::Value = serde_json::from_str(&text).unwrap();
    metrics[key]
        .as_f64()
        .unwrap_or_else(|| panic!("metrics.json has no {key}"))
}

fn check_consistent(report: &Report) {
    let s = &report.scores;
    assert_eq!(s.samples, 360);
    assert_eq!(s.confusion.iter().flatten().sum::<u64>(), 360);
    let diagonal: u64 = (0..10).map(|c| s.confusion[c][c]).sum();
    assert!((s.accuracy - diagonal as f64 / 360.0).abs() < 1e-12);
    for c in &s.classes {
        assert!((c.recall - s.confusion[c.class][c.class] as f64 / c.support as f64).abs() < 1e-12);
        // Class imbalance must not hide a bad class.
        assert!(c.recall > 0.85, "class {} recall {}", c.class, c.recall);
    }
    let auc = s.macro_roc_auc.expect("probabilities give a ROC AUC");
    assert!(auc > 0.99 && auc <= 1.0, "{auc}");
    assert!(report.latency.p99_us >= report.latency.p50_us && report.latency.mean_us > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eval_reproduces_train_py_on_every_digits_model() {
    let repository = open_config("../examples/digits/aimass.toml").await.unwrap();
    let data = Dataset::read_csv(&digits_dir().join("data/test.csv")).unwrap();
    assert_eq!((data.features, data.rows.len()), (64, 360));
    let mut accuracy = std::collections::BTreeMap::new();
    for (model, key) in [
        ("teacher", "teacher"),
        ("student", "student"),
        ("student-int8", "student_int8"),
        ("heavy", "heavy_teacher"),
    ] {
        let report = evaluate(&repository.models[model], &data, "test.csv", 1)
            .await
            .unwrap();
        check_consistent(&report);
        let (got, want) = (report.scores.accuracy, reported(key));
        assert!(
            (got - want).abs() <= TOLERANCE + 1e-12,
            "{model}: eval {got}, train.py {want}"
        );
        assert!(report.stages.is_none());
        accuracy.insert(model, got);
    }

    let report = evaluate(&repository.models["digits"], &data, "test.csv", 1)
        .await
        .unwrap();
    check_consistent(&report);
    assert!(
        report.scores.accuracy >= accuracy["student"],
        "cascade {} < student {}",
        report.scores.accuracy,
        accuracy["student"]
    );
    let stages = report.stages.expect("the cascade reports its stages");
    assert_eq!(
        stages.iter().map(|s| s.stage).collect::<Vec<_>>(),
        vec![0, 1]
    );
    assert_eq!(stages.iter().map(|s| s.samples).sum::<u64>(), 360);
    assert!(
        stages[0].samples > 180,
        "the student answered only {}",
        stages[0].samples
    );

    // Batches of 64 (the last one 40 rows) go through the cascade's split
    // and merge: every sample must get the answer it got alone.
    let batched = evaluate(&repository.models["digits"], &data, "test.csv", 64)
        .await
        .unwrap();
    check_consistent(&batched);
    assert_eq!(batched.batch, 64);
    assert_eq!(batched.scores.accuracy, report.scores.accuracy);
    assert_eq!(batched.scores.confusion, report.scores.confusion);
    let batched_stages = batched.stages.expect("stages in batches");
    assert_eq!(
        batched_stages.iter().map(|s| s.samples).collect::<Vec<_>>(),
        stages.iter().map(|s| s.samples).collect::<Vec<_>>()
    );
    assert!(
        evaluate(&repository.models["digits"], &data, "test.csv", 0)
            .await
            .unwrap_err()
            .contains("at least 1")
    );
}

#[test]
fn a_csv_with_mistakes_is_refused_naming_the_line() {
    let dir = aimass_tests::temp_dir("eval");
    let path = dir.join("bad.csv");
    std::fs::write(&path, "a,b,label\n1,2,0\n1,x,1\n").unwrap();
    let error = Dataset::read_csv(&path).unwrap_err();
    assert!(
        error.ends_with("bad.csv:3: `b` is `x`, not a number"),
        "{error}"
    );
    std::fs::write(&path, "a,b\n1,2\n").unwrap();
    assert!(
        Dataset::read_csv(&path)
            .unwrap_err()
            .ends_with("the header has no `label` column")
    );
    std::fs::write(&path, "a,label\n1,2,3\n").unwrap();
    assert!(
        Dataset::read_csv(&path)
            .unwrap_err()
            .ends_with("bad.csv:2: 3 fields, the header has 2")
    );
    std::fs::remove_dir_all(dir).unwrap();
}
