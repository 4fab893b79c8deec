//! The hierarchy executor's own cost per node: a four-layer sequence of one
//! scaler node against four direct calls of the same node pool.
//!
//! `cargo bench -p aimass-tests --bench hierarchy`

use aimass::graph::Request;
use aimass_tests::{f32_tensor, open_config};
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

fn executor_overhead(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio");
    let repository = rt
        .block_on(open_config("configs/bench.toml"))
        .expect("config");
    let sequence = repository.models["four-layers"].clone();
    let node = repository.models["scale"].pool().expect("a node").clone();
    let x = || vec![("x".to_string(), f32_tensor(&[1, 8], &[1.0; 8]))];
    let mut group = c.benchmark_group("executor");
    group.bench_function("four_direct_node_calls", |b| {
        b.to_async(&rt).iter(|| async {
            let mut current = x();
            for _ in 0..4 {
                let out = node.infer(current).await.expect("node");
                current = out.into_iter().map(|(_, t)| ("x".to_string(), t)).collect();
            }
            black_box(current)
        })
    });
    group.bench_function("four_layer_sequence", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                sequence
                    .run(Request {
                        inputs: x(),
                        ..Request::default()
                    })
                    .await
                    .expect("sequence"),
            )
        })
    });
    group.bench_function("four_layer_sequence_traced", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                sequence
                    .run(Request {
                        inputs: x(),
                        trace: true,
                        ..Request::default()
                    })
                    .await
                    .expect("sequence"),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, executor_overhead);
criterion_main!(benches);
