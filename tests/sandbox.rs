//! A plugin that loops, blows its memory or panics fails its own call with a
//! clear error and nothing else: the next call to the same node succeeds,
//! and other nodes never notice. A plugin gets no ambient capabilities.

use aimass::runtime::bindings::ParamValue;
use aimass::runtime::{
    GrantedGraphs, InstanceLimits, Isolation, NnState, NodePool, NodeSpec, Runtime, RuntimeError,
};
use aimass_test_artifacts::{CHAOS, PROBER, SCALER};
use aimass_tests::{f32_tensor, f32_values, i64_tensor, load, runtime};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CALL_TIMEOUT: Duration = Duration::from_millis(300);
const MEMORY_CAP: usize = 32 << 20;

async fn pool(
    runtime: &Arc<Runtime>,
    name: &str,
    path: &str,
    isolation: Isolation,
    params: Vec<(String, ParamValue)>,
) -> NodePool {
    let plugin = load(runtime, name, path);
    let spec = NodeSpec {
        node: name.to_string(),
        params,
        graphs: GrantedGraphs::default(),
        limits: InstanceLimits {
            memory_bytes: MEMORY_CAP,
            call_timeout: CALL_TIMEOUT,
        },
        isolation,
        max_instances: 2,
        max_queue: 16,
        queue_timeout: std::time::Duration::from_secs(5),
    };
    NodePool::start(runtime.clone(), plugin, spec)
        .await
        .unwrap_or_else(|e| panic!("starting {name}: {e}"))
}

async fn act(pool: &NodePool, action: i64) -> Result<Vec<f32>, RuntimeError> {
    let inputs = vec![
        ("action".to_string(), i64_tensor(&[1], &[action])),
        ("x".to_string(), f32_tensor(&[2], &[1.5, -2.0])),
    ];
    pool.infer(inputs).await.map(|out| f32_values(&out[0].1))
}

async fn assert_healthy(pool: &NodePool) {
    assert_eq!(act(pool, 0).await.unwrap(), vec![1.5, -2.0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misbehaving_plugin_fails_only_its_own_call() {
    let runtime = Arc::new(runtime());
    let chaos_node = pool(&runtime, "chaos", CHAOS, Isolation::Pooled, vec![]).await;
    let bystander = pool(
        &runtime,
        "scaler",
        SCALER,
        Isolation::Pooled,
        vec![("scale".into(), ParamValue::Number(2.0))],
    )
    .await;
    assert_healthy(&chaos_node).await;

    // Loops forever: interrupted at its deadline, while another node serves.
    let started = Instant::now();
    let (looped, bystander_result) = tokio::join!(act(&chaos_node, 1), async {
        bystander
            .infer(vec![("x".into(), f32_tensor(&[1, 2], &[1.0, 2.0]))])
            .await
    });
    let elapsed = started.elapsed();
    match looped {
        Err(RuntimeError::Timeout { timeout, .. }) => assert_eq!(timeout, CALL_TIMEOUT),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    assert_eq!(f32_values(&bystander_result.unwrap()[0].1), vec![2.0, 4.0]);
    assert_healthy(&chaos_node).await;

    // Grows memory without bound: stopped at its cap.
    match act(&chaos_node, 2).await {
        Err(RuntimeError::OutOfMemory { limit, asked, .. }) => {
            assert_eq!(limit, MEMORY_CAP);
            assert!(asked > MEMORY_CAP);
        }
        other => panic!("expected out-of-memory, got {other:?}"),
    }
    assert_healthy(&chaos_node).await;

    // Panics: a trap that carries the panic's own message.
    match act(&chaos_node, 3).await {
        Err(error @ RuntimeError::Trap { .. }) => {
            let message = error.to_string();
            assert!(message.contains("chaos was asked to panic"), "{message}");
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    assert_healthy(&chaos_node).await;

    // A plugin's own error does not poison the instance.
    assert!(matches!(
        act(&chaos_node, 99).await,
        Err(RuntimeError::Plugin { .. })
    ));
    assert_eq!(chaos_node.idle_instances(), 1);
}

#[tokio::test]
async fn pooled_instances_carry_state_per_request_ones_do_not() {
    let runtime = Arc::new(runtime());
    let pooled = pool(&runtime, "chaos", CHAOS, Isolation::Pooled, vec![]).await;
    let fresh = pool(&runtime, "chaos", CHAOS, Isolation::PerRequest, vec![]).await;
    for expected in 1..=3 {
        assert_eq!(act(&pooled, 4).await.unwrap(), vec![expected as f32]);
        assert_eq!(act(&fresh, 4).await.unwrap(), vec![1.0]);
    }
    assert_eq!(fresh.idle_instances(), 0);
}

#[tokio::test]
async fn a_plugin_gets_no_ambient_capabilities() {
    let runtime = Arc::new(runtime());
    let node = pool(&runtime, "prober", PROBER, Isolation::Pooled, vec![]).await;
    let outputs = node.infer(vec![]).await.unwrap();
    let report = String::from_utf8(outputs[0].1.data().to_vec()).unwrap();
    eprintln!("{report}");
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines.len(), 8, "{report}");
    for line in lines {
        assert!(line.contains(": denied ("), "capability granted: {line}");
    }
}

#[tokio::test]
async fn bad_parameters_are_refused_when_the_node_starts() {
    let runtime = Arc::new(runtime());
    let plugin = load(&runtime, "scaler", SCALER);
    let spec = NodeSpec {
        node: "pixels".into(),
        params: vec![("scale".into(), ParamValue::Text("big".into()))],
        graphs: GrantedGraphs::default(),
        limits: InstanceLimits::default(),
        isolation: Isolation::Pooled,
        max_instances: 1,
        max_queue: 16,
        queue_timeout: std::time::Duration::from_secs(5),
    };
    let err = NodePool::start(runtime, plugin, spec).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "plugin `scaler`: init failed: invalid-input: parameter `scale`: expected a number, \
         got text \"big\""
    );
}

#[tokio::test]
async fn a_memory_limit_above_the_engines_is_refused_clearly() {
    let runtime = Arc::new(runtime());
    let plugin = load(&runtime, "scaler", SCALER);
    let limits = InstanceLimits {
        memory_bytes: usize::MAX,
        call_timeout: CALL_TIMEOUT,
    };
    let err = runtime
        .instantiate(
            &plugin,
            "greedy",
            NnState::new(&GrantedGraphs::default()),
            limits,
        )
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("node `greedy` asks for a memory limit"),
        "{message}"
    );
}

/// A plugin that hands `compute` a tensor of the wrong type or shape gets the
/// graph's error with a message, never a crash of the host, and serves on.
#[tokio::test]
async fn a_wrong_tensor_handed_to_compute_is_an_error_not_a_panic() {
    let runtime = Arc::new(runtime());
    let mut store = aimass::nn::GraphStore::default();
    store
        .load_file(
            "graph",
            &aimass_tests::digits_dir().join("models/student.onnx"),
            aimass::nn::BackendKind::Tract,
            aimass::nn::Device::Cpu,
        )
        .unwrap();
    let spec = NodeSpec {
        node: "chaos".into(),
        // `x` declared [N, M], so the graph's [N, 10] logits fit it.
        params: vec![("compute".into(), ParamValue::Flag(true))],
        graphs: store.grant(["graph"]).unwrap(),
        limits: InstanceLimits::default(),
        isolation: Isolation::Pooled,
        max_instances: 1,
        max_queue: 16,
        queue_timeout: std::time::Duration::from_secs(5),
    };
    let node = NodePool::start(runtime.clone(), load(&runtime, "chaos", CHAOS), spec)
        .await
        .unwrap();
    let compute = |x: aimass::tensor::Tensor| {
        node.infer(vec![
            ("action".into(), i64_tensor(&[1], &[5])),
            ("x".into(), x),
        ])
    };
    let cases = [
        (
            i64_tensor(&[1, 32], &[0; 32]),
            "input `input` must be FP32, got INT64",
        ),
        (
            f32_tensor(&[1, 31], &[0.0; 31]),
            "must have shape [N, 32], got [1, 31]",
        ),
        (
            f32_tensor(&[32], &[0.0; 32]),
            "must have shape [N, 32], got [32]",
        ),
    ];
    for (x, expected) in cases {
        match compute(x).await {
            Err(RuntimeError::Plugin { message, .. }) => {
                assert!(message.contains(expected), "`{message}` lacks `{expected}`")
            }
            other => panic!("expected the plugin's error, got {other:?}"),
        }
    }
    let logits = compute(f32_tensor(&[2, 32], &[0.0; 64])).await.unwrap();
    assert_eq!(logits[0].1.dims(), [2, 10]);
}
