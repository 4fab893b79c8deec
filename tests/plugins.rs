//! Every plugin is built to a component, loads in the real runtime, and
//! reports through `info()` what it is. A plugin without a test here fails
//! to compile (see `foreach_plugin!`).

use aimass::nn::{BackendKind, Device, GraphStore};
use aimass::runtime::bindings::ParamValue;
use aimass::runtime::{GuestErrorKind, ModelKind, RuntimeError};
use aimass::runtime::{InstanceLimits, NnState};
use aimass::tensor::{Dtype, TensorSpec};
use aimass_test_artifacts::{
    CHAOS, CLASSIFIER_HEAD, FORGER, HOSTILE, OCR_CLASSIFY, OCR_DETECT, OCR_RECOGNISE, OLD_CONTRACT,
    PLUGIN_TEMPLATE, POISON, PROBER, SCALER, STRINGS, WRONG_TYPES, WRONG_WORLD, foreach_plugin,
};
use aimass_tests::{
    compute, digits_dir, digits_test_rows, f32_tensor, f32_values, i64_values, instance, load,
    runtime,
};

/// The digits feature graph and one teacher member, on tract.
fn digits_graphs() -> GraphStore {
    let mut store = GraphStore::default();
    for name in ["features", "teacher_0"] {
        let path = digits_dir().join(format!("models/{name}.onnx"));
        store
            .load_file(name, &path, BackendKind::Tract, Device::Cpu)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    store
}

/// The first `n` digits test images as features (computed natively).
fn digits_features(store: &GraphStore, n: usize) -> (aimass::tensor::Tensor, Vec<i64>) {
    let rows = &digits_test_rows()[..n];
    let pixels: Vec<f32> = rows
        .iter()
        .flat_map(|(p, _)| p.iter().map(|v| v / 16.0))
        .collect();
    let pixels = f32_tensor(&[n as u32, 64], &pixels);
    let graph = &store.get("features").unwrap().graph;
    let features = compute(graph, "input", pixels).unwrap().remove(0).1;
    (features, rows.iter().map(|(_, label)| *label).collect())
}

macro_rules! assert_plugin_is_tested {
    ($name:ident) => {
        #[expect(unused_imports, reason = "only checks that the test exists")]
        use self::$name as _;
    };
}
foreach_plugin!(assert_plugin_is_tested);

fn spec(name: &str, dtype: Dtype, shape: &[i64]) -> TensorSpec {
    TensorSpec {
        name: name.into(),
        dtype,
        shape: shape.to_vec(),
    }
}

#[test]
fn every_plugin_is_a_component_not_a_core_module() {
    for path in [
        SCALER,
        CLASSIFIER_HEAD,
        PLUGIN_TEMPLATE,
        WRONG_WORLD,
        CHAOS,
        PROBER,
    ] {
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(&bytes[..4], b"\0asm", "{path}");
        assert_ne!(&bytes[4..8], &[1, 0, 0, 0], "{path} is a core module");
    }
}

#[tokio::test]
async fn scaler() {
    let runtime = runtime();
    let plugin = load(&runtime, "scaler", SCALER);
    let mut node = instance(&runtime, &plugin, "pixels").await;

    let info = node.info().await.unwrap();
    assert_eq!(info.name, "scaler");
    assert_eq!(info.kind, ModelKind::FeatureExtractor);
    assert_eq!(info.inputs, vec![spec("x", Dtype::Fp32, &[-1, -1])]);
    assert_eq!(info.outputs, vec![spec("y", Dtype::Fp32, &[-1, -1])]);

    node.init(vec![
        ("offset".into(), ParamValue::Numbers(vec![1.0, 2.0, 3.0])),
        ("scale".into(), ParamValue::Number(0.5)),
    ])
    .await
    .unwrap();
    let info = node.info().await.unwrap();
    assert_eq!(info.inputs, vec![spec("x", Dtype::Fp32, &[-1, 3])]);

    let x = f32_tensor(&[2, 3], &[1.0, 2.0, 3.0, 5.0, 6.0, 7.0]);
    let outputs = node.infer(vec![("x".into(), x)]).await.unwrap();
    assert_eq!(outputs.len(), 1);
    assert_eq!(outputs[0].0, "y");
    assert_eq!(outputs[0].1.dims(), [2, 3]);
    assert_eq!(
        f32_values(&outputs[0].1),
        vec![0.0, 0.0, 0.0, 2.0, 2.0, 2.0]
    );

    // A wrong width is the caller's error, and the instance keeps serving.
    let err = node
        .infer(vec![("x".into(), f32_tensor(&[1, 2], &[0.0, 0.0]))])
        .await
        .unwrap_err();
    match err {
        RuntimeError::Plugin { kind, message, .. } => {
            assert_eq!(kind, GuestErrorKind::InvalidInput);
            assert_eq!(message, "input `x`: expected shape [-1, 3], got [1, 2]");
        }
        other => panic!("expected a plugin error, got {other}"),
    }
    let outputs = node
        .infer(vec![("x".into(), f32_tensor(&[1, 3], &[3.0, 4.0, 5.0]))])
        .await
        .unwrap();
    assert_eq!(f32_values(&outputs[0].1), vec![1.0, 1.0, 1.0]);

    // A misspelt parameter is refused at init, naming the key.
    let mut fresh = instance(&runtime, &plugin, "typo").await;
    let err = fresh
        .init(vec![("sacle".into(), ParamValue::Number(2.0))])
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "plugin `scaler`: init failed: invalid-input: unknown parameter `sacle`; \
         this plugin takes: [offset, scale, graph, graph-input, graph-output, projected, features]"
    );
}

#[tokio::test]
async fn classifier_head() {
    let runtime = runtime();
    let plugin = load(&runtime, "classifier-head", CLASSIFIER_HEAD);
    let mut node = instance(&runtime, &plugin, "student").await;

    let info = node.info().await.unwrap();
    assert_eq!(info.name, "classifier-head");
    assert_eq!(info.kind, ModelKind::Classifier);
    assert_eq!(info.inputs, vec![spec("x", Dtype::Fp32, &[-1, -1])]);
    assert_eq!(
        info.outputs,
        vec![
            spec("label", Dtype::Int64, &[-1]),
            spec("probabilities", Dtype::Fp32, &[-1, -1]),
            spec("confidence", Dtype::Fp32, &[-1]),
        ]
    );
    assert_eq!(info.labels, None);

    // This node was granted no graphs: asking for one is `not-found`.
    let err = node
        .init(vec![("graph".into(), ParamValue::Text("digits".into()))])
        .await
        .unwrap_err();
    match err {
        RuntimeError::Plugin { kind, message, .. } => {
            assert_eq!(kind, GuestErrorKind::Model);
            assert!(
                message.starts_with("graph `digits`: not-found"),
                "unexpected message: {message}"
            );
        }
        other => panic!("expected a plugin error, got {other}"),
    }
}

/// With a granted graph the head computes for real: its probabilities are
/// the softmax of the logits the same graph gives natively.
#[tokio::test]
async fn classifier_head_computes_through_its_granted_graph() {
    let runtime = runtime();
    let plugin = load(&runtime, "classifier-head", CLASSIFIER_HEAD);
    let store = digits_graphs();
    let granted = store.grant(["teacher_0"]).unwrap();
    let mut node = runtime
        .instantiate(
            &plugin,
            "teacher",
            NnState::new(&granted),
            InstanceLimits::default(),
        )
        .await
        .unwrap();
    node.init(vec![
        ("graph".into(), ParamValue::Text("teacher_0".into())),
        ("classes".into(), ParamValue::Integer(10)),
    ])
    .await
    .unwrap();

    let (features, labels) = digits_features(&store, 8);
    let logits = compute(
        &store.get("teacher_0").unwrap().graph,
        "input",
        features.clone(),
    )
    .unwrap()
    .remove(0)
    .1;
    let outputs = node.infer(vec![("x".into(), features)]).await.unwrap();
    let get = |name: &str| &outputs.iter().find(|(n, _)| n == name).unwrap().1;
    let probabilities = f32_values(get("probabilities"));
    let expected_labels: Vec<i64> = f32_values(&logits)
        .chunks_exact(10)
        .zip(probabilities.chunks_exact(10))
        .map(|(z, p)| {
            let total: f32 = z.iter().map(|v| v.exp()).sum();
            for (zi, pi) in z.iter().zip(p) {
                assert!((zi.exp() / total - pi).abs() < 1e-5, "softmax {zi} -> {pi}");
            }
            (0..10).max_by(|&a, &b| z[a].total_cmp(&z[b])).unwrap() as i64
        })
        .collect();
    let label = get("label");
    let label: Vec<i64> = i64_values(label);
    assert_eq!(label, expected_labels);
    // Six of these eight the teacher reads right (train.py's numpy agrees).
    let right = label.iter().zip(&labels).filter(|(a, b)| a == b).count();
    assert_eq!(right, 6);

    // A width the graph does not take is the graph's error, passed back to
    // the plugin with its message; the instance keeps serving.
    let err = node
        .infer(vec![("x".into(), f32_tensor(&[2, 5], &[0.0; 10]))])
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("input `input` must have shape [N, 32], got [2, 5]"),
        "{err}"
    );
    let (features, _) = digits_features(&store, 1);
    node.infer(vec![("x".into(), features)]).await.unwrap();
}

/// The template a new author copies must itself work.
#[tokio::test]
async fn plugin_template() {
    let runtime = runtime();
    let plugin = load(&runtime, "template", PLUGIN_TEMPLATE);
    let mut node = instance(&runtime, &plugin, "gate").await;
    let info = node.info().await.unwrap();
    assert_eq!(info.name, "threshold");
    assert_eq!(info.kind, ModelKind::Classifier);
    assert_eq!(info.labels, Some(vec!["below".into(), "above".into()]));
    node.init(vec![("threshold".into(), ParamValue::Number(0.7))])
        .await
        .unwrap();
    let outputs = node
        .infer(vec![("score".into(), f32_tensor(&[3], &[0.1, 0.7, 0.9]))])
        .await
        .unwrap();
    assert_eq!(outputs[0].0, "label");
    let labels: Vec<i64> = i64_values(&outputs[0].1);
    assert_eq!(labels, vec![0, 1, 1]);
}

/// What the plugin at `path`, loaded as `name`, says about itself by default.
async fn describe(name: &str, path: &str) -> aimass::runtime::ModelInfo {
    let runtime = runtime();
    let plugin = load(&runtime, name, path);
    instance(&runtime, &plugin, name)
        .await
        .info()
        .await
        .unwrap()
}

// The sandbox fixtures' behaviour is tested in sandbox.rs; here, that they
// load and describe themselves like any plugin.
#[tokio::test]
async fn chaos() {
    let info = describe("chaos", CHAOS).await;
    assert_eq!(info.name, "chaos");
    assert_eq!(
        info.inputs,
        vec![
            spec("action", Dtype::Int64, &[1]),
            spec("x", Dtype::Fp32, &[-1])
        ]
    );
}

#[tokio::test]
async fn prober() {
    let info = describe("prober", PROBER).await;
    assert_eq!(info.name, "prober");
    assert_eq!(info.outputs, vec![spec("report", Dtype::Uint8, &[-1])]);
}

#[test]
fn wrong_world() {
    let runtime = runtime();
    let err = runtime
        .load("calculator", std::path::Path::new(WRONG_WORLD), None)
        .unwrap_err();
    assert!(matches!(err, RuntimeError::WrongWorld { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "plugin `calculator` does not implement the aimass sub-model contract: it does not \
         export `aimass:plugin/model@0.2.0` (its exports: [add]); build it with aimass-sdk \
         and `export_sub_model!`"
    );
}

/// A plugin built against contract 0.1.0 (before BYTES) is refused at load,
/// and the message says what to rebuild it with.
#[test]
fn old_contract() {
    let runtime = runtime();
    let err = runtime
        .load("old", std::path::Path::new(OLD_CONTRACT), None)
        .unwrap_err();
    assert!(matches!(err, RuntimeError::WrongWorld { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "plugin `old` does not implement the aimass sub-model contract: it exports \
             `aimass:plugin/model@0.1.0`, but this host speaks `aimass:plugin/model@0.2.0`; \
             rebuild it against aimass-sdk {} (contract 0.2.0 added BYTES and the other \
             protocol types)",
            env!("CARGO_PKG_VERSION")
        )
    );
}

/// BYTES in and out of a plugin: empty, multi-byte and non-UTF-8 elements
/// arrive as they were sent and come back as the plugin made them.
#[tokio::test]
async fn strings() {
    let runtime = runtime();
    let plugin = load(&runtime, "strings", STRINGS);
    let mut node = instance(&runtime, &plugin, "strings").await;
    node.init(vec![("prefix".into(), ParamValue::Text(">".into()))])
        .await
        .unwrap();
    let info = node.info().await.unwrap();
    assert_eq!(info.inputs, vec![spec("text", Dtype::Bytes, &[-1])]);
    let elements: Vec<&[u8]> = vec![b"", "größe 文字".as_bytes(), b"\xff\x00a"];
    let text = aimass::tensor::Tensor::from_strings(vec![3], &elements).unwrap();
    let outputs = node.infer(vec![("text".into(), text)]).await.unwrap();
    let upper = &outputs.iter().find(|(n, _)| n == "upper").unwrap().1;
    assert_eq!(upper.dtype(), Dtype::Bytes);
    assert_eq!(
        upper.strings(),
        [&b">"[..], ">GRößE 文字".as_bytes(), b">\xff\x00A"]
    );
    let length = &outputs.iter().find(|(n, _)| n == "length").unwrap().1;
    assert_eq!(i64_values(length), [0, 14, 3]);
}

/// The OCR plugins describe the tensors they pass along the pipeline; their
/// work on real models is tested in ocr.rs.
#[tokio::test]
async fn ocr_detect() {
    let info = describe("ocr-detect", OCR_DETECT).await;
    assert_eq!(info.inputs, vec![spec("image", Dtype::Bytes, &[1])]);
    assert_eq!(
        info.outputs,
        vec![
            spec("crops", Dtype::Uint8, &[-1, 48, -1, 3]),
            spec("widths", Dtype::Int32, &[-1]),
            spec("boxes", Dtype::Fp32, &[-1, 4, 2]),
        ]
    );
}

#[tokio::test]
async fn ocr_classify() {
    let info = describe("ocr-classify", OCR_CLASSIFY).await;
    assert_eq!(info.kind, ModelKind::Classifier);
    assert_eq!(info.labels, Some(vec!["0".to_string(), "180".to_string()]));
    assert_eq!(info.outputs.len(), 5);
}

#[tokio::test]
async fn ocr_recognise() {
    let info = describe("ocr-recognise", OCR_RECOGNISE).await;
    assert_eq!(
        info.outputs,
        vec![
            spec("text", Dtype::Bytes, &[-1]),
            spec("confidence", Dtype::Fp32, &[-1]),
            spec("boxes", Dtype::Fp32, &[-1, 4, 2]),
        ]
    );
    // Its character list is a granted graph: without one, init says so.
    let runtime = runtime();
    let plugin = load(&runtime, "ocr-recognise", OCR_RECOGNISE);
    let mut node = instance(&runtime, &plugin, "read").await;
    let err = node
        .init(vec![
            ("graph".into(), ParamValue::Text("rec".into())),
            ("characters".into(), ParamValue::Text("chars".into())),
        ])
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("graph `chars`: not-found"),
        "{err}"
    );
}

// Its attacks are tested in containment.rs.
#[tokio::test]
async fn hostile() {
    let info = describe("hostile", HOSTILE).await;
    assert_eq!(info.inputs, vec![spec("x", Dtype::Fp32, &[-1, 10])]);
    assert_eq!(info.outputs, vec![spec("y", Dtype::Fp32, &[-1, 10])]);
}

/// Echoes rows; one poison row fails the whole call, its error quoting
/// every value (tests/batch_containment.rs runs it batched).
#[tokio::test]
async fn poison() {
    let runtime = runtime();
    let plugin = load(&runtime, "poison", POISON);
    let mut node = instance(&runtime, &plugin, "poison").await;
    node.init(vec![]).await.unwrap();
    let info = node.info().await.unwrap();
    assert_eq!(
        info.outputs,
        vec![
            spec("y", Dtype::Fp32, &[-1, -1]),
            spec("y:shape", Dtype::Fp32, &[-1])
        ]
    );
    let x = f32_tensor(&[2, 2], &[1.0, 2.0, 3.0, 4.0]);
    let outputs = node.infer(vec![("x".into(), x)]).await.unwrap();
    assert_eq!(f32_values(&outputs[0].1), [1.0, 2.0, 3.0, 4.0]);
    assert_eq!(f32_values(&outputs[1].1), [1.0, 3.0]);
    let x = f32_tensor(&[2, 2], &[1.0, 2.0, -3.0, 4.0]);
    let err = node.infer(vec![("x".into(), x)]).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("cannot score [1.0, 2.0, -3.0, 4.0]"),
        "{err}"
    );
}

/// Its description forges lines and escape sequences, which `inspect`
/// shows escaped (host/tests/cli.rs); with `forge_names` its names carry
/// them too, and it is refused at load.
#[tokio::test]
async fn forger() {
    let info = describe("forger", FORGER).await;
    assert!(info.description.contains("\x1b]52;"));
    let runtime = runtime();
    let plugin = load(&runtime, "forger", FORGER);
    let mut node = instance(&runtime, &plugin, "forger").await;
    node.init(vec![("forge_names".into(), ParamValue::Flag(true))])
        .await
        .unwrap();
    let info = node.info().await.unwrap();
    let refused = aimass::runtime::validate_info(&info).unwrap_err();
    assert_eq!(
        refused,
        "`name` holds a control or bidirectional character (shown escaped: \
         `forger\\x1b[31m`); names must be plain text"
    );
}

/// The contract's export names with other types: refused before it serves,
/// and the message blames the plugin (not the node's params).
#[tokio::test]
async fn wrong_types() {
    let runtime = runtime();
    let path = std::path::Path::new(WRONG_TYPES);
    let err = match runtime.load("impostor", path, None) {
        Err(err) => err,
        Ok(plugin) => runtime
            .instantiate(
                &plugin,
                "impostor",
                aimass_tests::no_graphs(),
                InstanceLimits::default(),
            )
            .await
            .unwrap_err(),
    };
    assert!(matches!(err, RuntimeError::WrongWorld { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.starts_with(
            "plugin `impostor` does not implement the aimass sub-model contract: its exports \
             do not have the contract's types"
        ),
        "{message}"
    );
    assert!(
        message.contains("rebuild it against aimass-sdk"),
        "{message}"
    );
}

#[test]
fn a_pinned_digest_must_match() {
    let runtime = runtime();
    let bytes = std::fs::read(SCALER).unwrap();
    let actual = aimass::runtime::sha256_hex(&bytes);
    let path = std::path::Path::new(SCALER);
    runtime.load("scaler", path, Some(&actual)).unwrap();
    let wrong = "0".repeat(64);
    let err = runtime.load("scaler", path, Some(&wrong)).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains(&wrong) && message.contains(&actual),
        "{message}"
    );
}

#[tokio::test]
async fn a_second_load_comes_from_the_compile_cache() {
    let dir = std::env::temp_dir().join(format!("aimass-cache-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let options = || aimass::runtime::EngineOptions {
        max_instances: 4,
        compile_cache: Some(dir.clone()),
        ..Default::default()
    };
    let path = std::path::Path::new(SCALER);

    let first = aimass::runtime::Runtime::new(options()).unwrap();
    let plugin = first.load("scaler", path, None).unwrap();
    assert!(!plugin.compiled_from_cache());

    // A new runtime (a restart) finds the compiled code on disk.
    let second = aimass::runtime::Runtime::new(options()).unwrap();
    let plugin = second.load("scaler", path, None).unwrap();
    assert!(plugin.compiled_from_cache());
    let info = instance(&second, &plugin, "cached")
        .await
        .info()
        .await
        .unwrap();
    assert_eq!(info.name, "scaler");

    // A damaged entry is ignored and replaced, never trusted.
    let entry = std::fs::read_dir(&dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(&entry, b"not a cwasm").unwrap();
    let third = aimass::runtime::Runtime::new(options()).unwrap();
    let plugin = third.load("scaler", path, None).unwrap();
    assert!(!plugin.compiled_from_cache());
    assert!(
        third
            .load("scaler", path, None)
            .unwrap()
            .compiled_from_cache()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
