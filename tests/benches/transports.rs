//! REST against gRPC on the same server and the same requests: batch-1 and
//! batch-64 `digits` from 32 concurrent clients, in alternating rounds so
//! both see the same noise. Figures, never pass/fail:
//!
//!     cargo bench -p aimass-tests --bench transports
//!
//! Environment: ROUNDS (3), SECONDS (5), CONC (32). Client and server share
//! the machine, as wrk and the server do in tests/load/.

use aimass::server::Limits;
use aimass::server::grpc::proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use aimass::server::grpc::proto::{ModelInferRequest, model_infer_request::InferInputTensor};
use aimass_tests::{TestServer, digits_test_rows};
use std::time::{Duration, Instant};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Requests per second and p50/p99 in ms of `calls` running `conc` at a time.
async fn drive<F, Fut>(conc: u64, seconds: u64, call: F) -> (f64, f64, f64)
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let call = call.clone();
        tasks.push(tokio::spawn(async move {
            let mut took = Vec::new();
            while Instant::now() < until {
                let started = Instant::now();
                assert!(call().await, "a request failed");
                took.push(started.elapsed().as_secs_f64() * 1e3);
            }
            took
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all.sort_by(f64::total_cmp);
    let at = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
    (all.len() as f64 / seconds as f64, at(0.5), at(0.99))
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (rounds, seconds, conc) = (env("ROUNDS", 3), env("SECONDS", 5), env("CONC", 32));
        let limits = Limits {
            max_concurrency: 1024,
            ..Limits::default()
        };
        let server = TestServer::start(limits).await;
        let rows = digits_test_rows();
        println!("transports: digits, c={conc}, {rounds} rounds of {seconds} s per case");
        for batch in [1usize, 64] {
            let pixels: Vec<f32> = rows[..batch].iter().flat_map(|(p, _)| p.clone()).collect();
            let json = serde_json::json!({"inputs": [{"name": "pixels", "shape": [batch, 64],
                                                      "datatype": "FP32", "data": pixels}]})
            .to_string();
            let raw: Vec<u8> = pixels.iter().flat_map(|v| v.to_le_bytes()).collect();
            let grpc_request = ModelInferRequest {
                model_name: "digits".into(),
                inputs: vec![InferInputTensor {
                    name: "pixels".into(),
                    datatype: "FP32".into(),
                    shape: vec![batch as i64, 64],
                    ..Default::default()
                }],
                raw_input_contents: vec![raw.into()],
                ..Default::default()
            };
            let (mut rest_rates, mut grpc_rates) = (Vec::new(), Vec::new());
            for round in 1..=rounds {
                let (client, url, body) = (
                    server.client.clone(),
                    server.url("/v2/models/digits/infer"),
                    json.clone(),
                );
                let rest = drive(conc, seconds, move || {
                    let (client, url, body) = (client.clone(), url.clone(), body.clone());
                    async move {
                        client
                            .post(url)
                            .body(body)
                            .send()
                            .await
                            .is_ok_and(|r| r.status() == 200)
                    }
                })
                .await;
                let channel = tonic::transport::Channel::from_shared(server.grpc.clone())
                    .unwrap()
                    .connect()
                    .await
                    .unwrap();
                let client = GrpcInferenceServiceClient::new(channel);
                let request = grpc_request.clone();
                let grpc = drive(conc, seconds, move || {
                    let (mut client, request) = (client.clone(), request.clone());
                    async move { client.model_infer(request).await.is_ok() }
                })
                .await;
                println!(
                    "batch {batch} round {round}: REST {:.0} req/s (p50 {:.2} ms, p99 {:.2} ms), \
                     gRPC {:.0} req/s (p50 {:.2} ms, p99 {:.2} ms)",
                    rest.0, rest.1, rest.2, grpc.0, grpc.1, grpc.2
                );
                rest_rates.push(rest.0);
                grpc_rates.push(grpc.0);
            }
            let median = |v: &mut Vec<f64>| {
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            };
            let (rest, grpc) = (median(&mut rest_rates), median(&mut grpc_rates));
            println!(
                "batch {batch}: median REST {rest:.0} req/s ({:.0} rows/s), gRPC {grpc:.0} req/s \
                 ({:.0} rows/s), gRPC/REST {:.2}",
                rest * batch as f64,
                grpc * batch as f64,
                grpc / rest
            );
        }
        server.stop().await.unwrap();
    });
}
