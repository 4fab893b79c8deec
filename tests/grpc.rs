//! The gRPC binding against the real server, with the client generated from
//! the same proto: every RPC, raw and typed contents, all seven element
//! types, streaming, the error codes with REST's messages, and the same
//! answer as REST to the bit.

use aimass::server::Limits;
use aimass::server::grpc::proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use aimass::server::grpc::proto::{self as pb, model_infer_request::InferInputTensor};
use aimass_tests::{TestServer, digits_test_rows};
use serde_json::{Value, json};
use tonic::Code;
use tonic::transport::Channel;

async fn client(server: &TestServer) -> GrpcInferenceServiceClient<Channel> {
    GrpcInferenceServiceClient::connect(server.grpc.clone())
        .await
        .expect("connect")
}

fn raw_request(
    model: &str,
    name: &str,
    datatype: &str,
    shape: &[i64],
    raw: Vec<u8>,
) -> pb::ModelInferRequest {
    pb::ModelInferRequest {
        model_name: model.into(),
        inputs: vec![InferInputTensor {
            name: name.into(),
            datatype: datatype.into(),
            shape: shape.to_vec(),
            ..Default::default()
        }],
        raw_input_contents: vec![raw.into()],
        ..Default::default()
    }
}

fn pixels(rows: &[(Vec<f32>, i64)]) -> Vec<u8> {
    rows.iter()
        .flat_map(|(p, _)| p.iter().flat_map(|v| v.to_le_bytes()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_answers_like_rest() {
    let server = TestServer::start(Limits::default()).await;
    let mut grpc = client(&server).await;

    assert!(
        grpc.server_live(pb::ServerLiveRequest {})
            .await
            .unwrap()
            .into_inner()
            .live
    );
    assert!(
        grpc.server_ready(pb::ServerReadyRequest {})
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    let ready = |name: &str| pb::ModelReadyRequest {
        name: name.into(),
        version: String::new(),
    };
    assert!(
        grpc.model_ready(ready("digits"))
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    assert!(
        !grpc
            .model_ready(ready("nope"))
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    // Kubernetes' gRPC probe.
    let channel = Channel::from_shared(server.grpc.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let check = |service: &str| tonic_health::pb::HealthCheckRequest {
        service: service.into(),
    };
    // It follows readiness by polling it (every 250 ms): allow a few polls.
    for service in ["", "inference.GRPCInferenceService"] {
        let serving = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
        let mut status = 0;
        for _ in 0..40 {
            status = health
                .check(check(service))
                .await
                .unwrap()
                .into_inner()
                .status;
            if status == serving {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(
            status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32
        );
    }
    let metadata = grpc
        .server_metadata(pb::ServerMetadataRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(metadata.name, "aimass");
    assert!(
        metadata
            .extensions
            .contains(&"model_repository".to_string())
    );
    let model = grpc
        .model_metadata(pb::ModelMetadataRequest {
            name: "digits".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (model.name.as_str(), model.versions.clone()),
        ("digits", vec!["1".to_string()])
    );
    assert_eq!(model.inputs[0].name, "pixels");
    assert_eq!(model.inputs[0].shape, vec![-1, 64]);

    // The same rows over both transports: bit-identical outputs.
    let rows = &digits_test_rows()[..5];
    let answer = grpc
        .model_infer(raw_request(
            "digits",
            "pixels",
            "FP32",
            &[5, 64],
            pixels(rows),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.model_name, "digits");
    assert_eq!(answer.model_version, "1");
    let data: Vec<Vec<f32>> = rows.iter().map(|(p, _)| p.clone()).collect();
    let (status, rest) = server
        .post_json(
            "/v2/models/digits/infer",
            &json!({"inputs": [{"name": "pixels", "shape": [5, 64], "datatype": "FP32", "data": data}]}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        answer.outputs.len(),
        rest["outputs"].as_array().unwrap().len()
    );
    for (i, output) in answer.outputs.iter().enumerate() {
        let json = &rest["outputs"][i];
        assert_eq!(json["name"], output.name.as_str());
        assert_eq!(json["datatype"], output.datatype.as_str());
        let raw = &answer.raw_output_contents[i];
        let from_rest: Vec<u8> = json["data"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|v| match output.datatype.as_str() {
                "FP32" => (v.as_f64().unwrap() as f32).to_le_bytes().to_vec(),
                "INT64" => v.as_i64().unwrap().to_le_bytes().to_vec(),
                other => panic!("unexpected {other}"),
            })
            .collect();
        assert_eq!(raw.as_ref(), from_rest.as_slice(), "{}", output.name);
    }

    let config = grpc
        .model_config(pb::ModelConfigRequest {
            name: "digits".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .config
        .unwrap();
    assert_eq!(config.input[0].data_type, pb::DataType::TypeFp32 as i32);
    assert_eq!(config.parameters["kind"].string_value, "sequence");
    // Both front ends write the one description the service assembles.
    let (_, rest) = server.get_json("/v2/models/digits/config").await;
    assert_eq!(rest["name"], config.name.as_str());
    assert_eq!(rest["platform"], config.platform.as_str());
    assert_eq!(
        rest["parameters"]["members"]["string_value"],
        config.parameters["members"].string_value.as_str()
    );
    assert_eq!(rest["input"][0]["dims"], json!(config.input[0].dims));
    assert_eq!(
        rest["output"].as_array().unwrap().len(),
        config.output.len()
    );
    let stats = grpc
        .model_statistics(pb::ModelStatisticsRequest {
            name: "digits".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        stats.model_stats[0].inference_count, 10,
        "5 rows over each transport"
    );
    let (_, rest) = server.get_json("/v2/models/digits/stats").await;
    let rest = &rest["model_stats"][0];
    let grpc_stats = &stats.model_stats[0];
    assert_eq!(rest["inference_count"], grpc_stats.inference_count);
    assert_eq!(rest["execution_count"], grpc_stats.execution_count);
    let success = grpc_stats
        .inference_stats
        .as_ref()
        .unwrap()
        .success
        .as_ref()
        .unwrap();
    assert_eq!(rest["inference_stats"]["success"]["count"], success.count);
    assert_eq!(rest["inference_stats"]["success"]["ns"], success.ns);

    // The client's x-request-id comes back, as over REST.
    let mut request = tonic::Request::new(raw_request(
        "digits",
        "pixels",
        "FP32",
        &[1, 64],
        pixels(&rows[..1]),
    ));
    request
        .metadata_mut()
        .insert("x-request-id", "trace-me-42".parse().unwrap());
    let answer = grpc.model_infer(request).await.unwrap();
    assert_eq!(
        answer.metadata().get("x-request-id").unwrap(),
        "trace-me-42"
    );

    // Errors: the code for the kind, REST's message.
    let missing = grpc
        .model_infer(raw_request("nope", "x", "FP32", &[1, 1], vec![0; 4]))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert!(
        missing.message().starts_with("unknown model `nope`"),
        "{}",
        missing.message()
    );
    let short = grpc
        .model_infer(raw_request(
            "digits",
            "pixels",
            "FP32",
            &[1, 64],
            vec![0; 8],
        ))
        .await
        .unwrap_err();
    assert_eq!(short.code(), Code::InvalidArgument);
    assert!(
        short.message().contains("input `pixels`"),
        "{}",
        short.message()
    );
    let (_, rest_error) = server
        .post_json("/v2/models/digits/infer", &json!({"inputs": [{"name": "pixels", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}))
        .await;
    let wrong_shape = grpc
        .model_infer(raw_request(
            "digits",
            "pixels",
            "FP32",
            &[1, 3],
            vec![0; 12],
        ))
        .await
        .unwrap_err();
    assert_eq!(wrong_shape.code(), Code::InvalidArgument);
    assert_eq!(Value::from(wrong_shape.message()), rest_error["error"]);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_seven_types_round_trip_raw_and_typed() {
    let server = TestServer::start(Limits::default()).await;
    let mut grpc = client(&server).await;
    let raw_types: [(&str, &str, usize); 7] = [
        ("echo-fp16", "FP16", 2),
        ("echo-fp32", "FP32", 4),
        ("echo-fp64", "FP64", 8),
        ("echo-bf16", "BF16", 2),
        ("echo-uint8", "UINT8", 1),
        ("echo-int32", "INT32", 4),
        ("echo-int64", "INT64", 8),
    ];
    for (model, datatype, size) in raw_types {
        let bytes: Vec<u8> = (0..2 * 3 * size).map(|i| (i * 7 % 251) as u8).collect();
        let answer = grpc
            .model_infer(raw_request(model, "x", datatype, &[2, 3], bytes.clone()))
            .await
            .unwrap_or_else(|e| panic!("{model}: {e}"))
            .into_inner();
        assert_eq!(answer.outputs[0].datatype, datatype);
        assert_eq!(answer.outputs[0].shape, vec![2, 3]);
        assert_eq!(
            answer.raw_output_contents[0].as_ref(),
            bytes.as_slice(),
            "{model}"
        );
    }
    let typed =
        |model: &str, datatype: &str, contents: pb::InferTensorContents| pb::ModelInferRequest {
            model_name: model.into(),
            inputs: vec![InferInputTensor {
                name: "x".into(),
                datatype: datatype.into(),
                shape: vec![1, 2],
                contents: Some(contents),
                ..Default::default()
            }],
            ..Default::default()
        };
    let cases = [
        (
            "echo-fp32",
            "FP32",
            pb::InferTensorContents {
                fp32_contents: vec![1.5, -2.25],
                ..Default::default()
            },
            [1.5f32.to_le_bytes(), (-2.25f32).to_le_bytes()].concat(),
        ),
        (
            "echo-fp64",
            "FP64",
            pb::InferTensorContents {
                fp64_contents: vec![0.1, 1e300],
                ..Default::default()
            },
            [0.1f64.to_le_bytes(), 1e300f64.to_le_bytes()].concat(),
        ),
        (
            "echo-int32",
            "INT32",
            pb::InferTensorContents {
                int_contents: vec![-7, i32::MAX],
                ..Default::default()
            },
            [(-7i32).to_le_bytes(), i32::MAX.to_le_bytes()].concat(),
        ),
        (
            "echo-int64",
            "INT64",
            pb::InferTensorContents {
                int64_contents: vec![i64::MIN, 3],
                ..Default::default()
            },
            [i64::MIN.to_le_bytes(), 3i64.to_le_bytes()].concat(),
        ),
        (
            "echo-uint8",
            "UINT8",
            pb::InferTensorContents {
                uint_contents: vec![0, 255],
                ..Default::default()
            },
            vec![0u8, 255],
        ),
    ];
    for (model, datatype, contents, want) in cases {
        let answer = grpc
            .model_infer(typed(model, datatype, contents))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            answer.raw_output_contents[0].as_ref(),
            want.as_slice(),
            "{model}"
        );
    }
    let too_big = grpc
        .model_infer(typed(
            "echo-uint8",
            "UINT8",
            pb::InferTensorContents {
                uint_contents: vec![1, 256],
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(too_big.code(), Code::InvalidArgument);
    assert!(
        too_big.message().contains("256 does not fit in UINT8"),
        "{}",
        too_big.message()
    );
    let fp16_typed = grpc
        .model_infer(typed(
            "echo-fp16",
            "FP16",
            pb::InferTensorContents {
                fp32_contents: vec![1.0, 2.0],
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert!(
        fp16_typed
            .message()
            .contains("send it as raw_input_contents"),
        "{}",
        fp16_typed.message()
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_answers_every_request_in_order_and_errors_in_band() {
    let server = TestServer::start(Limits::default()).await;
    let mut grpc = client(&server).await;
    let rows = digits_test_rows();
    let mut requests: Vec<pb::ModelInferRequest> = (0..40)
        .map(|i| {
            let mut r = raw_request(
                "digits",
                "pixels",
                "FP32",
                &[1, 64],
                pixels(&rows[i..i + 1]),
            );
            r.id = format!("req-{i}");
            r
        })
        .collect();
    requests[7].model_name = "nope".into();
    let answers = grpc
        .model_stream_infer(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    let answers: Vec<pb::ModelStreamInferResponse> =
        tokio_stream::StreamExt::collect::<Vec<_>>(tokio_stream::StreamExt::map(answers, |a| {
            a.unwrap()
        }))
        .await;
    assert_eq!(answers.len(), 40);
    for (i, answer) in answers.iter().enumerate() {
        if i == 7 {
            assert!(
                answer.error_message.starts_with("unknown model `nope`"),
                "{}",
                answer.error_message
            );
            continue;
        }
        let response = answer.infer_response.as_ref().expect("an answer");
        assert_eq!(response.id, format!("req-{i}"));
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repository_calls_work_and_need_the_token_when_one_is_set() {
    let server = TestServer::start(Limits::default()).await;
    let mut grpc = client(&server).await;
    let index = grpc
        .repository_index(pb::RepositoryIndexRequest {
            repository_name: String::new(),
            ready: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        index
            .models
            .iter()
            .any(|m| m.name == "digits" && m.state == "READY")
    );
    let unload = |name: &str| pb::RepositoryModelUnloadRequest {
        model_name: name.into(),
        ..Default::default()
    };
    let refused = grpc
        .repository_model_unload(unload("student-head"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("student-or-teacher"),
        "{}",
        refused.message()
    );
    grpc.repository_model_unload(unload("scale")).await.unwrap();
    let gone = grpc
        .model_infer(raw_request("scale", "x", "FP32", &[1, 4], vec![0; 16]))
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::Unavailable);
    grpc.repository_model_load(pb::RepositoryModelLoadRequest {
        model_name: "scale".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    grpc.model_infer(raw_request("scale", "x", "FP32", &[1, 4], vec![0; 16]))
        .await
        .unwrap();
    server.stop().await.unwrap();

    let guarded = TestServer::start_guarded(
        "configs/serve.toml",
        Limits::default(),
        aimass::server::AdminToken::new("s3cret").unwrap(),
    )
    .await;
    let mut grpc = client(&guarded).await;
    let index = || pb::RepositoryIndexRequest {
        repository_name: String::new(),
        ready: false,
    };
    let denied = grpc.repository_index(index()).await.unwrap_err();
    assert_eq!(denied.code(), Code::Unauthenticated);
    let mut request = tonic::Request::new(index());
    request
        .metadata_mut()
        .insert("authorization", "Bearer s3cret".parse().unwrap());
    assert!(
        !grpc
            .repository_index(request)
            .await
            .unwrap()
            .into_inner()
            .models
            .is_empty()
    );
    guarded.stop().await.unwrap();
}

/// A chaos request over gRPC: `action` (0 echo, 1 loop, 3 panic) and `x`.
fn chaos(action: i64, x_bytes: usize) -> pb::ModelInferRequest {
    let input = |name: &str, datatype: &str, shape: Vec<i64>| InferInputTensor {
        name: name.into(),
        datatype: datatype.into(),
        shape,
        ..Default::default()
    };
    pb::ModelInferRequest {
        model_name: "chaos".into(),
        inputs: vec![
            input("action", "INT64", vec![1]),
            input("x", "FP32", vec![(x_bytes / 4) as i64]),
        ],
        raw_input_contents: vec![
            action.to_le_bytes().to_vec().into(),
            vec![0; x_bytes].into(),
        ],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_failures_map_to_their_codes() {
    // A small message limit and a request deadline under the plugin's own
    // 300 ms budget.
    let limits = Limits {
        max_body_bytes: 16 << 10,
        request_timeout: std::time::Duration::from_millis(100),
        ..Limits::default()
    };
    let server = TestServer::start(limits).await;
    let mut grpc = client(&server).await;
    grpc.model_infer(chaos(0, 4))
        .await
        .expect("an echo answers");

    // A message over the limit is refused before any handler runs, with
    // RESOURCE_EXHAUSTED (as grpc-core says) and the limit named.
    let too_big = grpc.model_infer(chaos(0, 32 << 10)).await.unwrap_err();
    assert_eq!(too_big.code(), Code::ResourceExhausted, "{too_big}");
    assert!(
        too_big
            .message()
            .contains("over the server's limit of 16384 bytes"),
        "{}",
        too_big.message()
    );

    let late = grpc.model_infer(chaos(1, 4)).await.unwrap_err();
    assert_eq!(late.code(), Code::DeadlineExceeded, "{late}");
    assert!(
        late.message().contains("request timeout of 100 ms"),
        "{}",
        late.message()
    );

    let panicked = grpc.model_infer(chaos(3, 4)).await.unwrap_err();
    assert_eq!(panicked.code(), Code::Internal, "{panicked}");
    assert!(
        panicked.message().contains("chaos was asked to panic"),
        "{}",
        panicked.message()
    );

    // And the server still answers.
    grpc.model_infer(chaos(0, 4))
        .await
        .expect("an echo answers after");
    server.stop().await.unwrap();
}

/// A raw HTTP/2 connection to the gRPC port: what a hostile client sends,
/// not what tonic's client would.
async fn raw_h2(
    server: &TestServer,
) -> (
    h2::client::SendRequest<bytes::Bytes>,
    tokio::task::JoinHandle<()>,
) {
    let address = server.grpc.trim_start_matches("http://").to_string();
    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    let (send, connection) = h2::client::handshake(tcp).await.unwrap();
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    (send, driver)
}

/// Sends `body` (already framed) to `path`; ends the stream when `end`.
/// The answer's grpc-status and grpc-message, from its trailers or its
/// headers (a trailers-only answer).
async fn raw_call(
    send: &mut h2::client::SendRequest<bytes::Bytes>,
    path: &str,
    body: Vec<u8>,
    end: bool,
) -> (String, String) {
    let request = http::Request::post(format!("http://localhost{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let mut ready = send.clone().ready().await.unwrap();
    let (response, mut stream) = ready.send_request(request, false).unwrap();
    stream.send_data(body.into(), end).unwrap();
    let response = response.await.unwrap();
    // grpc-message is percent-encoded on the wire.
    let field = |headers: &http::HeaderMap, name: &str| {
        headers.get(name).map(|v| {
            let (mut bytes, mut raw) = (Vec::new(), v.as_bytes().iter());
            while let Some(&b) = raw.next() {
                let hex = |h: Option<&u8>| h.and_then(|&h| (h as char).to_digit(16));
                match b {
                    b'%' => match (hex(raw.next()), hex(raw.next())) {
                        (Some(hi), Some(lo)) => bytes.push((hi * 16 + lo) as u8),
                        _ => bytes.push(b'?'),
                    },
                    b => bytes.push(b),
                }
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    if let Some(code) = field(response.headers(), "grpc-status") {
        let message = field(response.headers(), "grpc-message").unwrap_or_default();
        return (code, message);
    }
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    let trailers = body.trailers().await.unwrap().unwrap_or_default();
    (
        field(&trailers, "grpc-status").unwrap_or_default(),
        field(&trailers, "grpc-message").unwrap_or_default(),
    )
}

fn framed(message: &[u8]) -> Vec<u8> {
    let mut body = vec![0];
    body.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    body.extend_from_slice(message);
    body
}

/// Waits until the peer closes `tcp` (EOF or reset); how long that took.
async fn closed_within(tcp: &mut tokio::net::TcpStream, limit: std::time::Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut sink = vec![0u8; 4096];
    let wait = async {
        loop {
            match tcp.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(limit, wait).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grpc_port_has_rest_armour() {
    let limits = Limits {
        header_timeout: std::time::Duration::from_millis(500),
        body_timeout: std::time::Duration::from_millis(500),
        max_connections: 4,
        max_body_memory_bytes: 4 << 20,
        ..Limits::default()
    };
    let server = TestServer::start(limits).await;
    let infer = "/inference.GRPCInferenceService/ModelInfer";
    let (mut send, driver) = raw_h2(&server).await;

    // A million empty inputs (2 MB on the wire, ~0.5 GB once decoded) are
    // refused from the wire form, before decoding.
    let mut message = Vec::with_capacity(2_000_000);
    for _ in 0..1_000_000 {
        message.extend_from_slice(&[5 << 3 | 2, 0]);
    }
    let (code, text) = raw_call(&mut send, infer, framed(&message), true).await;
    assert_eq!(code, "3", "{text}");
    assert!(text.contains("more than 4096 inputs"), "{text}");
    // The same message in a stream is measured the same way.
    let stream = "/inference.GRPCInferenceService/ModelStreamInfer";
    let (code, text) = raw_call(&mut send, stream, framed(&message), true).await;
    assert_eq!(code, "3", "{text}");
    assert!(text.contains("more than 4096 inputs"), "{text}");
    // Streams per connection are bounded, and said so in SETTINGS.
    assert_eq!(send.current_max_send_streams(), 128);

    // A length prefix that promises 1000 bytes, then 10 and silence: the
    // body deadline answers it.
    let mut stalled = vec![0, 0, 0, 0x03, 0xe8];
    stalled.extend_from_slice(&[0u8; 10]);
    let started = std::time::Instant::now();
    let (code, text) = raw_call(&mut send, infer, stalled, false).await;
    assert_eq!(code, "4", "{text}");
    assert!(text.contains("did not arrive within 500 ms"), "{text}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    drop(send);
    driver.abort();

    // A connection that never sends its preface is closed after the header
    // deadline; so is one that shakes hands and then idles.
    let address = server.grpc.trim_start_matches("http://").to_string();
    let mut silent = tokio::net::TcpStream::connect(&address).await.unwrap();
    assert!(closed_within(&mut silent, std::time::Duration::from_secs(5)).await);
    let tcp = tokio::net::TcpStream::connect(&address).await.unwrap();
    let (idle_send, idle) = h2::client::handshake(tcp).await.unwrap();
    let ended = tokio::time::timeout(std::time::Duration::from_secs(5), idle).await;
    assert!(ended.is_ok(), "an idle HTTP/2 connection stayed open");
    drop(idle_send);

    // Over the connection cap, more gRPC connections are closed at once,
    // and REST (its own cap) answers throughout.
    // (The connections above have ended on the server's side by now.)
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(tokio::net::TcpStream::connect(&address).await.unwrap());
    }
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let mut over = tokio::net::TcpStream::connect(&address).await.unwrap();
    assert!(closed_within(&mut over, std::time::Duration::from_millis(300)).await);
    let (status, _) = server.get_json("/v2/health/ready").await;
    assert_eq!(status, 200);
    // The held ones time out; the port serves again.
    for tcp in &mut held {
        assert!(closed_within(tcp, std::time::Duration::from_secs(5)).await);
    }
    let mut grpc = client(&server).await;
    let ready = grpc.server_ready(pb::ServerReadyRequest {}).await.unwrap();
    assert!(ready.get_ref().ready);

    // What a message takes once decoded counts against the body budget, not
    // its wire size: 600,000 zeros of INT64 are 0.6 MB on the wire and
    // 4.8 MB decoded, over the 4 MiB budget.
    let mut zeros = raw_request("simple", "x", "INT64", &[600_000], Vec::new());
    zeros.raw_input_contents.clear();
    zeros.inputs[0].contents = Some(pb::InferTensorContents {
        int64_contents: vec![0; 600_000],
        ..Default::default()
    });
    let spent = grpc.model_infer(zeros).await.unwrap_err();
    assert_eq!(spent.code(), Code::Unavailable, "{spent}");
    assert!(
        spent.message().contains("--max-body-memory-bytes"),
        "{}",
        spent.message()
    );

    // A 100 KiB model name comes back cut, so that stock clients (8-16 KiB
    // of metadata) read NOT_FOUND, not RESOURCE_EXHAUSTED.
    let long = "m".repeat(100 << 10);
    let error = grpc
        .model_infer(raw_request(&long, "x", "FP32", &[1], vec![0; 4]))
        .await
        .unwrap_err();
    assert_eq!(
        error.code(),
        Code::NotFound,
        "{}",
        &error.message()[..200.min(error.message().len())]
    );
    assert!(
        error.message().len() <= 4096,
        "{} bytes",
        error.message().len()
    );
    server.stop().await.unwrap();
}
