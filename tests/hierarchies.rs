//! One test per hierarchy kind, with real plugins and the digits models;
//! every expected number is computed from the same graphs called natively.

use aimass::graph::{ExecError, Request, Response, Served};
use aimass::nn::{BackendKind, Device, GraphStore};
use aimass::repository::Repository;
use aimass::tensor::Tensor;
use aimass_tests::{compute, digits_dir, digits_test_rows, f32_tensor, f32_values, open_config};
use std::collections::BTreeMap;
use std::sync::Arc;

const ROWS: usize = 40;

struct Fixture {
    repository: Repository,
    native: GraphStore,
    pixels: Vec<f32>,
    features: Tensor,
}

async fn fixture() -> Fixture {
    let repository = open_config("configs/hierarchies.toml")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut native = GraphStore::default();
    for name in ["features", "teacher_0", "teacher_1", "teacher_2", "student"] {
        native
            .load_file(
                name,
                &digits_dir().join(format!("models/{name}.onnx")),
                BackendKind::Tract,
                Device::Cpu,
            )
            .unwrap();
    }
    let pixels: Vec<f32> = digits_test_rows()[..ROWS]
        .iter()
        .flat_map(|(p, _)| p.clone())
        .collect();
    let scaled: Vec<f32> = pixels.iter().map(|v| v / 16.0).collect();
    let features = compute(
        &native.get("features").unwrap().graph,
        "input",
        f32_tensor(&[ROWS as u32, 64], &scaled),
    )
    .unwrap()
    .remove(0)
    .1;
    Fixture {
        repository,
        native,
        pixels,
        features,
    }
}

impl Fixture {
    fn model(&self, name: &str) -> &Arc<Served> {
        self.repository
            .models
            .get(name)
            .unwrap_or_else(|| panic!("no model {name}"))
    }

    /// Softmax of a graph's logits on the fixture's features, natively.
    fn probabilities(&self, graph: &str) -> Vec<f32> {
        let logits = compute(
            &self.native.get(graph).unwrap().graph,
            "input",
            self.features.clone(),
        )
        .unwrap();
        softmax_rows(&f32_values(&logits[0].1))
    }

    async fn run(&self, model: &str, inputs: Vec<(String, Tensor)>) -> Result<Response, ExecError> {
        self.model(model)
            .run(Request {
                inputs,
                ..Request::default()
            })
            .await
    }

    fn pixels(&self) -> Vec<(String, Tensor)> {
        vec![(
            "pixels".into(),
            f32_tensor(&[ROWS as u32, 64], &self.pixels),
        )]
    }

    fn x(&self) -> Vec<(String, Tensor)> {
        vec![("x".into(), self.features.clone())]
    }
}

fn softmax_rows(logits: &[f32]) -> Vec<f32> {
    logits
        .chunks_exact(10)
        .flat_map(|row| {
            let max = row.iter().copied().fold(f32::MIN, f32::max);
            let exp: Vec<f32> = row.iter().map(|v| (v - max).exp()).collect();
            let total: f32 = exp.iter().sum();
            exp.into_iter().map(move |e| e / total)
        })
        .collect()
}

fn argmax_rows(probabilities: &[f32]) -> Vec<i64> {
    probabilities
        .chunks_exact(10)
        .map(|row| (0..10).fold(0, |best, i| if row[i] > row[best] { i } else { best }) as i64)
        .collect()
}

fn output<'a>(response: &'a Response, name: &str) -> &'a Tensor {
    &response
        .outputs
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no output {name}"))
        .1
}

fn i64_values(tensor: &Tensor) -> Vec<i64> {
    aimass_tests::i64_values(tensor)
}

fn assert_close(actual: &[f32], expected: &[f32], what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: lengths");
    let worst = actual
        .iter()
        .zip(expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(worst < 1e-5, "{what}: off by {worst}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequence_maps_outputs_to_the_next_inputs() {
    let f = fixture().await;
    let response = f.run("student-pipeline", f.pixels()).await.unwrap();
    let expected = f.probabilities("student");
    assert_close(
        &f32_values(output(&response, "probabilities")),
        &expected,
        "student pipeline",
    );
    assert_eq!(
        i64_values(output(&response, "label")),
        argmax_rows(&expected)
    );
    let signature = &f.model("student-pipeline").signature;
    assert_eq!(signature.inputs[0].name, "pixels");
    assert_eq!(signature.inputs[0].shape, vec![-1, -1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dag_runs_branches_and_passes_skip_connections() {
    let f = fixture().await;
    let response = f
        .model("two-heads")
        .run(Request {
            inputs: f.pixels(),
            trace: true,
            ..Request::default()
        })
        .await
        .unwrap();
    assert_eq!(
        i64_values(output(&response, "label")),
        argmax_rows(&f.probabilities("student"))
    );
    assert_close(
        &f32_values(output(&response, "teacher_probabilities")),
        &f.probabilities("teacher_0"),
        "teacher branch",
    );
    let scaled: Vec<f32> = f.pixels.iter().map(|v| v / 16.0).collect();
    assert_close(
        &f32_values(output(&response, "scaled")),
        &scaled,
        "skip connection",
    );
    let traced: Vec<&str> = response.trace.iter().map(|t| t.model.as_str()).collect();
    for step in ["scale", "project", "student", "teacher-0", "two-heads"] {
        assert!(
            traced.contains(&step),
            "{step} missing from trace {traced:?}"
        );
    }
    assert!(response.trace.iter().all(|t| t.outcome == "ok"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensembles_vote_average_weigh_and_stack() {
    let f = fixture().await;
    let [p0, p1, p2] = ["teacher_0", "teacher_1", "teacher_2"].map(|g| f.probabilities(g));
    let student = f.probabilities("student");

    let mean: Vec<f32> = (0..p0.len())
        .map(|i| (p0[i] + p1[i] + p2[i]) / 3.0)
        .collect();
    let response = f.run("teachers-mean", f.x()).await.unwrap();
    assert_close(
        &f32_values(output(&response, "probabilities")),
        &mean,
        "mean",
    );
    assert_eq!(i64_values(output(&response, "label")), argmax_rows(&mean));
    let confidence: Vec<f32> = mean
        .chunks_exact(10)
        .map(|r| r.iter().copied().fold(0.0, f32::max))
        .collect();
    assert_close(
        &f32_values(output(&response, "confidence")),
        &confidence,
        "confidence",
    );

    let weighted: Vec<f32> = (0..p0.len()).map(|i| (3.0 * p0[i] + p1[i]) / 4.0).collect();
    let response = f.run("teachers-weighted", f.x()).await.unwrap();
    assert_close(
        &f32_values(output(&response, "probabilities")),
        &weighted,
        "weighted",
    );

    let response = f.run("teachers-vote", f.x()).await.unwrap();
    let (l0, l1, ls) = (argmax_rows(&p0), argmax_rows(&p1), argmax_rows(&student));
    let expected: Vec<i64> = (0..ROWS)
        .map(|i| if l1[i] == ls[i] { l1[i] } else { l0[i] })
        .collect();
    assert_eq!(i64_values(output(&response, "label")), expected);
    let agreement = f32_values(output(&response, "agreement"));
    for i in 0..ROWS {
        let votes = [l0[i], l1[i], ls[i]]
            .iter()
            .filter(|&&l| l == expected[i])
            .count();
        assert!((agreement[i] - votes as f32 / 3.0).abs() < 1e-6);
    }

    // The meta-model averages the stacked probabilities; its head applies softmax.
    let response = f.run("teachers-stacked", f.x()).await.unwrap();
    let stacked = softmax_rows(&mean);
    assert_close(
        &f32_values(output(&response, "probabilities")),
        &stacked,
        "stacking",
    );
    assert_eq!(i64_values(output(&response, "label")), argmax_rows(&mean));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switch_chooses_by_parameter_or_by_tensor() {
    let f = fixture().await;
    let by = |variant: &str| Request {
        inputs: f.x(),
        parameters: BTreeMap::from([("variant".to_string(), serde_json::json!(variant))]),
        ..Request::default()
    };
    let model = f.model("by-parameter");
    let teacher = model.run(by("teacher")).await.unwrap();
    assert_close(
        &f32_values(output(&teacher, "probabilities")),
        &f.probabilities("teacher_0"),
        "teacher branch",
    );
    let student = model.run(by("student")).await.unwrap();
    assert_close(
        &f32_values(output(&student, "probabilities")),
        &f.probabilities("student"),
        "student branch",
    );
    let err = model.run(by("oracle")).await.unwrap_err();
    assert_eq!(err.kind(), aimass::error_kind::ErrorKind::Client);
    assert_eq!(
        err.to_string(),
        "switch `by-parameter`: no branch for variant = `oracle`"
    );
    let err = f.run("by-parameter", f.x()).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "switch `by-parameter`: the request needs parameter `variant`"
    );

    let plain = f.run("by-tensor", f.x()).await.unwrap();
    assert_close(
        &f32_values(output(&plain, "probabilities")),
        &f.probabilities("student"),
        "default branch",
    );
    // A value above the predicate's 100 takes the `teacher-0` branch: the
    // answer is that graph's, computed natively on the same features.
    let mut loud = f32_values(&f.features);
    loud[3] = 200.0;
    let loud = f32_tensor(&[ROWS as u32, 32], &loud);
    let routed = f
        .run("by-tensor", vec![("x".into(), loud.clone())])
        .await
        .unwrap();
    let logits = compute(&f.native.get("teacher_0").unwrap().graph, "input", loud).unwrap();
    assert_close(
        &f32_values(output(&routed, "probabilities")),
        &softmax_rows(&f32_values(&logits[0].1)),
        "predicate branch",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cascade_stops_confident_rows_and_escalates_the_rest() {
    let f = fixture().await;
    let student = f.probabilities("student");
    let [p0, p1, p2] = ["teacher_0", "teacher_1", "teacher_2"].map(|g| f.probabilities(g));
    let teachers: Vec<f32> = (0..p0.len())
        .map(|i| (p0[i] + p1[i] + p2[i]) / 3.0)
        .collect();
    let response = f.run("student-then-teachers", f.x()).await.unwrap();
    let stage = i64_values(output(&response, "stage"));
    let probabilities = f32_values(output(&response, "probabilities"));
    let mut escalated = 0;
    for row in 0..ROWS {
        let confident = student[row * 10..(row + 1) * 10]
            .iter()
            .copied()
            .fold(0.0, f32::max)
            >= 0.99;
        let (expected_stage, source) = if confident {
            (0, &student)
        } else {
            (1, &teachers)
        };
        assert_eq!(stage[row], expected_stage, "row {row}");
        assert_close(
            &probabilities[row * 10..(row + 1) * 10],
            &source[row * 10..(row + 1) * 10],
            &format!("row {row}"),
        );
        escalated += usize::from(!confident);
    }
    assert!(
        escalated > 0 && escalated < ROWS,
        "{escalated} of {ROWS} escalated: both stages must answer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn splitter_splits_by_weight_and_sticks_to_the_request_id() {
    let f = fixture().await;
    let one = vec![(
        "x".to_string(),
        f32_tensor(&[1, 32], &f32_values(&f.features)[..32]),
    )];
    let student = f.probabilities("student")[..10].to_vec();
    let model = f.model("canary");
    let mut to_student = 0;
    for id in 0..100 {
        let request = |id: usize| Request {
            inputs: one.clone(),
            id: Some(format!("req-{id}")),
            ..Request::default()
        };
        let first = f32_values(output(
            &model.run(request(id)).await.unwrap(),
            "probabilities",
        ));
        let again = f32_values(output(
            &model.run(request(id)).await.unwrap(),
            "probabilities",
        ));
        assert_eq!(first, again, "request id {id} changed route");
        let is_student = first
            .iter()
            .zip(&student)
            .all(|(a, b)| (a - b).abs() < 1e-5);
        to_student += usize::from(is_student);
    }
    assert!(
        (75..100).contains(&to_student),
        "{to_student} of 100 went to the 90% route"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_answers_with_the_primary_and_the_shadow_runs() {
    let f = fixture().await;
    let shadow = f.model("teacher-0").pool().expect("a node");
    let before = shadow.calls();
    let response = f.run("student-shadowed", f.x()).await.unwrap();
    assert_close(
        &f32_values(output(&response, "probabilities")),
        &f.probabilities("student"),
        "primary",
    );
    // The copy runs on a task of its own, after or while the primary answers.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while shadow.calls() == before {
        assert!(std::time::Instant::now() < deadline, "the shadow never ran");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(shadow.calls(), before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trapping_soft_member_is_dropped_and_reported() {
    let f = fixture().await;
    let [p0, p1] = ["teacher_0", "teacher_1"].map(|g| f.probabilities(g));
    let response = f.run("with-a-panicking-member", f.x()).await.unwrap();
    let expected: Vec<f32> = (0..p0.len()).map(|i| (p0[i] + p1[i]) / 2.0).collect();
    assert_close(
        &f32_values(output(&response, "probabilities")),
        &expected,
        "two survivors",
    );
    assert_eq!(response.dropped.len(), 1);
    assert_eq!(response.dropped[0].model, "panicking");
    assert!(
        response.dropped[0]
            .error
            .contains("chaos was asked to panic"),
        "{}",
        response.dropped[0].error
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_few_surviving_members_fail_the_ensemble() {
    let f = fixture().await;
    let err = f.run("needs-every-member", f.x()).await.unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with(
            "ensemble `needs-every-member`: 2 of its members answered, it needs 3: `panicking`: "
        ),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_hard_dependency_fails_the_request() {
    let f = fixture().await;
    let err = f.run("hard-failure", f.x()).await.unwrap_err();
    assert_ne!(err.kind(), aimass::error_kind::ErrorKind::Client);
    let message = err.to_string();
    assert!(message.starts_with("node `panicking`: "), "{message}");
    assert!(message.contains("chaos was asked to panic"), "{message}");
}

/// The example hierarchy type-checks and answers the whole test split about
/// as well as train.py measured, mostly from the student.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_digits_example_serves_its_cascade() {
    let repository = open_config("../examples/digits/aimass.toml")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let rows = digits_test_rows();
    let pixels: Vec<f32> = rows.iter().flat_map(|(p, _)| p.clone()).collect();
    let inputs = vec![(
        "pixels".to_string(),
        f32_tensor(&[rows.len() as u32, 64], &pixels),
    )];
    let response = repository.models["digits"]
        .run(Request {
            inputs,
            ..Request::default()
        })
        .await
        .unwrap();
    let labels = i64_values(output(&response, "label"));
    let correct = labels
        .iter()
        .zip(&rows)
        .filter(|(a, (_, b))| *a == b)
        .count();
    let stages = i64_values(output(&response, "stage"));
    let first = stages.iter().filter(|&&s| s == 0).count();
    eprintln!(
        "digits: {correct} of {} right, {first} answered by the student",
        rows.len()
    );
    assert!(
        correct as f64 / rows.len() as f64 >= 0.96,
        "{correct} of {} right",
        rows.len()
    );
    assert!(
        first * 2 > rows.len(),
        "only {first} answered by the student"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_past_its_deadline_is_dropped_in_time() {
    let f = fixture().await;
    let started = std::time::Instant::now();
    let response = f.run("with-a-looping-member", f.x()).await.unwrap();
    let elapsed = started.elapsed();
    assert_close(
        &f32_values(output(&response, "probabilities")),
        &f.probabilities("teacher_0"),
        "survivor",
    );
    assert_eq!(response.dropped.len(), 1);
    assert_eq!(response.dropped[0].model, "looping");
    assert!(
        response.dropped[0].error.contains("time"),
        "{}",
        response.dropped[0].error
    );
    // 200 ms budget, checked every 5 ms; generous slack for a loaded machine.
    assert!(
        elapsed < std::time::Duration::from_secs(2),
        "took {elapsed:?}"
    );
}
