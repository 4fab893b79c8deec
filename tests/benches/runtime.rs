//! What the sandbox costs: instantiation, the overhead of a call into a
//! plugin, and a plugin's `compute` through wasi-nn against the same tract
//! graph called natively, at batch 1 and 64.
//!
//! `cargo bench -p aimass-tests --bench runtime`

use aimass::nn::{BackendKind, Device, GraphStore};
use aimass::runtime::bindings::ParamValue;
use aimass::runtime::{InstanceLimits, Isolation, NnState, NodePool, NodeSpec, Runtime};
use aimass::tensor::Tensor;
use aimass_test_artifacts::CHAOS;
use aimass_tests::{digits_dir, f32_tensor, i64_tensor, load, runtime};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::sync::Arc;
use wasmtime_wasi_nn::backend::NamedTensor;

const ECHO: i64 = 0;
const COMPUTE: i64 = 5;

fn tokio() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio")
}

fn graphs() -> GraphStore {
    let mut store = GraphStore::default();
    store
        .load_file(
            "graph",
            &digits_dir().join("models/teacher_0.onnx"),
            BackendKind::Tract,
            Device::Cpu,
        )
        .expect("teacher_0");
    store
}

fn node(rt: &tokio::runtime::Runtime, runtime: &Arc<Runtime>, isolation: Isolation) -> NodePool {
    let spec = NodeSpec {
        node: "chaos".into(),
        // `x` declared [N, M], so the graph's [N, 10] logits fit it.
        params: vec![("compute".into(), ParamValue::Flag(true))],
        graphs: graphs().grant(["graph"]).expect("grant"),
        limits: InstanceLimits::default(),
        isolation,
        max_instances: 1,
        max_queue: 16,
        queue_timeout: std::time::Duration::from_secs(5),
    };
    let plugin = load(runtime, "chaos", CHAOS);
    rt.block_on(NodePool::start(runtime.clone(), plugin, spec))
        .expect("node")
}

fn call(action: i64, x: Tensor) -> Vec<(String, Tensor)> {
    vec![
        ("action".into(), i64_tensor(&[1], &[action])),
        ("x".into(), x),
    ]
}

fn instantiate(c: &mut Criterion) {
    let rt = tokio();
    let runtime = runtime();
    let plugin = load(&runtime, "chaos", CHAOS);
    let store = graphs();
    c.bench_function("instantiate/pooling_allocator", |b| {
        b.to_async(&rt).iter(|| async {
            let granted = store.grant(["graph"]).expect("grant");
            let instance = runtime
                .instantiate(
                    &plugin,
                    "chaos",
                    NnState::new(&granted),
                    InstanceLimits::default(),
                )
                .await
                .expect("instance");
            black_box(instance)
        })
    });
}

fn call_overhead(c: &mut Criterion) {
    let rt = tokio();
    let runtime = Arc::new(runtime());
    let mut group = c.benchmark_group("empty_infer");
    for (label, isolation) in [
        ("pooled", Isolation::Pooled),
        ("per_request", Isolation::PerRequest),
    ] {
        let pool = node(&rt, &runtime, isolation);
        group.bench_function(label, |b| {
            b.to_async(&rt).iter(|| async {
                let x = f32_tensor(&[1, 1], &[1.0]);
                black_box(pool.infer(call(ECHO, x)).await.expect("echo"))
            })
        });
    }
    group.finish();
}

fn plugin_vs_native(c: &mut Criterion) {
    let rt = tokio();
    let runtime = Arc::new(runtime());
    let pool = node(&rt, &runtime, Isolation::Pooled);
    let store = graphs();
    let graph = store.get("graph").expect("graph").graph.clone();
    let mut group = c.benchmark_group("teacher_0_compute");
    for batch in [1u32, 64] {
        let x = f32_tensor(&[batch, 32], &vec![0.25; batch as usize * 32]);
        // The native baseline keeps one execution context, as a plugin does.
        let mut context = graph.init_execution_context().expect("context");
        group.bench_with_input(BenchmarkId::new("native", batch), &x, |b, x| {
            b.iter(|| {
                // A copy of the bytes per call, as the plugin path makes one.
                let input = NamedTensor {
                    name: "input".into(),
                    tensor: x.clone().into_backend().expect("an FP32 tensor"),
                };
                black_box(context.compute_with_io(vec![input]).expect("native"))
            })
        });
        group.bench_with_input(BenchmarkId::new("plugin", batch), &x, |b, x| {
            b.to_async(&rt).iter(|| async {
                black_box(pool.infer(call(COMPUTE, x.clone())).await.expect("plugin"))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, instantiate, call_overhead, plugin_vs_native);
criterion_main!(benches);
