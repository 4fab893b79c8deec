//! The HTTP server, over real sockets: every endpoint of the Open Inference
//! Protocol, JSON and binary tensors, each error status, and the limits.

use aimass::server::Limits;
use aimass_tests::{TestServer, chaos_request, digits_test_rows, read_json};
use serde_json::{Value, json};
use std::time::Duration;

const LENGTH: &str = "inference-header-content-length";

fn pixels_json(rows: &[(Vec<f32>, i64)]) -> Value {
    let data: Vec<Vec<f32>> = rows.iter().map(|(p, _)| p.clone()).collect();
    json!({ "name": "pixels", "shape": [rows.len(), 64], "datatype": "FP32", "data": data })
}

/// Splits a binary response into its JSON and each binary output's bytes.
fn split_binary(headers: &reqwest::header::HeaderMap, body: &[u8]) -> (Value, Vec<Vec<u8>>) {
    let length: usize = headers
        .get(LENGTH)
        .expect("Inference-Header-Content-Length")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let header: Value = serde_json::from_slice(&body[..length]).unwrap();
    let mut rest = &body[length..];
    let mut blobs = Vec::new();
    for output in header["outputs"].as_array().unwrap() {
        if let Some(size) = output["parameters"]["binary_data_size"].as_u64() {
            let (blob, after) = rest.split_at(size as usize);
            blobs.push(blob.to_vec());
            rest = after;
        }
    }
    assert!(rest.is_empty(), "unclaimed bytes after the outputs");
    (header, blobs)
}

async fn post_binary(
    server: &TestServer,
    path: &str,
    header: &Value,
    binary: &[u8],
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let header = header.to_string();
    let mut body = header.clone().into_bytes();
    body.extend_from_slice(binary);
    let response = server
        .client
        .post(server.url(path))
        .header("content-type", "application/octet-stream")
        .header(LENGTH, header.len())
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.bytes().await.unwrap().to_vec())
}

fn i64s(bytes: &[u8]) -> Vec<i64> {
    bytes
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_model_and_repository_endpoints() {
    let server = TestServer::start(Limits::default()).await;

    let (status, meta) = server.get_json("/v2").await;
    assert_eq!(status, 200);
    assert_eq!(meta["name"], "aimass");
    assert!(
        meta["extensions"]
            .as_array()
            .unwrap()
            .contains(&json!("binary_tensor_data"))
    );
    // KServe's bodies (its client parses them; tritonclient reads the status).
    for (path, body) in [
        ("/v2/health/live", json!({"live": true})),
        ("/v2/health/ready", json!({"ready": true})),
        (
            "/v2/models/digits/ready",
            json!({"name": "digits", "ready": true}),
        ),
        (
            "/v2/models/digits/versions/1/ready",
            json!({"name": "digits", "ready": true}),
        ),
    ] {
        assert_eq!(server.get_json(path).await, (200, body), "{path}");
    }

    let (status, list) = server.get_json("/v2/models").await;
    assert_eq!(status, 200);
    for model in [
        "digits",
        "features",
        "student-or-teacher",
        "shaky",
        "echo-int64",
    ] {
        assert!(
            list["models"].as_array().unwrap().contains(&json!(model)),
            "{model}"
        );
    }

    for path in ["/v2/models/digits", "/v2/models/digits/versions/1"] {
        let (status, meta) = server.get_json(path).await;
        assert_eq!(status, 200);
        assert_eq!(meta["name"], "digits");
        assert_eq!(meta["platform"], "aimass_sequence");
        assert_eq!(meta["versions"], json!(["1"]));
        assert_eq!(
            meta["inputs"],
            json!([{"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}])
        );
        assert_eq!(
            meta["outputs"][0],
            json!({"name": "label", "datatype": "INT64", "shape": [-1]})
        );
    }
    let (status, config) = server
        .get_json("/v2/models/student-or-teacher/config")
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        config["input"],
        json!([{"name": "x", "data_type": "TYPE_FP32", "dims": [-1, 32]}])
    );
    assert_eq!(
        config["parameters"]["members"]["string_value"],
        "student-head,teacher-head"
    );
    assert_eq!(
        server
            .get_json("/v2/models/digits/versions/1/config")
            .await
            .0,
        200
    );

    // 404s: unknown model, unknown version, unknown route; each says which.
    let (status, error) = server.get_json("/v2/models/nope").await;
    assert_eq!(status, 404);
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("unknown model `nope`"),
        "{error}"
    );
    let (status, error) = server.get_json("/v2/models/digits/versions/2").await;
    assert_eq!(status, 404);
    assert_eq!(
        error["error"],
        "model `digits` has no version `2` (it serves version 1)"
    );
    assert_eq!(server.get_json("/v2/models/nope/ready").await.0, 404);
    let (status, error) = server
        .post_json("/v2/models/nope/infer", &json!({"inputs": []}))
        .await;
    assert_eq!(status, 404, "{error}");
    let (status, error) = server.get_json("/v2/nothing-here").await;
    assert_eq!(
        (status, error["error"].as_str()),
        (404, Some("no endpoint GET /v2/nothing-here"))
    );
    let (status, error) = read_json(
        server
            .client
            .get(server.url("/v2/models/digits/infer"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 405);
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("does not take GET")
    );

    // Repository index: empty body or {"ready": true}.
    let empty = server
        .client
        .post(server.url("/v2/repository/index"))
        .send()
        .await
        .unwrap();
    let (status, index) = read_json(empty).await;
    assert_eq!(status, 200);
    assert!(
        index
            .as_array()
            .unwrap()
            .contains(&json!({"name": "digits", "version": "1", "state": "READY"}))
    );
    assert_eq!(
        server
            .post_json("/v2/repository/index", &json!({"ready": true}))
            .await
            .0,
        200
    );
    let bad = server
        .client
        .post(server.url("/v2/repository/index"))
        .body("[1")
        .send()
        .await
        .unwrap();
    assert_eq!(read_json(bad).await.0, 400);

    // One inference, then its statistics and metrics.
    let rows = digits_test_rows();
    let (status, _) = server
        .post_json(
            "/v2/models/digits/infer",
            &json!({"inputs": [pixels_json(&rows[..3])]}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, stats) = server.get_json("/v2/models/digits/stats").await;
    assert_eq!(status, 200);
    let digits = &stats["model_stats"][0];
    assert_eq!(
        (digits["name"].as_str(), digits["inference_count"].as_u64()),
        (Some("digits"), Some(3))
    );
    assert_eq!(digits["inference_stats"]["success"]["count"], 1);
    assert!(
        digits["inference_stats"]["compute_infer"]["ns"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(
        server
            .get_json("/v2/models/digits/versions/1/stats")
            .await
            .0,
        200
    );
    let (status, all) = server.get_json("/v2/models/stats").await;
    assert_eq!(status, 200);
    assert!(
        all["model_stats"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "digits")
    );

    let metrics = server.metrics_text().await;
    for line in [
        "aimass_requests_total{model=\"digits\",status=\"200\"}",
        "aimass_request_duration_seconds_bucket{model=\"digits\"",
        "aimass_node_duration_seconds_bucket{node=\"features\"",
        "aimass_node_queue_duration_seconds_bucket{node=\"student-head\"",
        "aimass_node_instances_in_use{node=\"features\"} 0",
        // Every native compute, per granted graph.
        "aimass_nn_compute_duration_seconds_bucket{graph=\"features\"",
        "aimass_tract_plans_total{event=\"built\"}",
    ] {
        assert!(metrics.contains(line), "/metrics lacks {line}:\n{metrics}");
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_and_binary_tensors_give_the_same_answers() {
    let server = TestServer::start(Limits::default()).await;
    let rows = digits_test_rows();
    let rows = &rows[..40];

    // JSON in (nested data), JSON out, with an id to echo.
    let mut request = json!({"id": "req-7", "inputs": [pixels_json(rows)]});
    let (status, json_answer) = server
        .post_json("/v2/models/digits/versions/1/infer", &request)
        .await;
    assert_eq!(status, 200, "{json_answer}");
    assert_eq!(
        (
            json_answer["id"].as_str(),
            json_answer["model_name"].as_str()
        ),
        (Some("req-7"), Some("digits"))
    );
    let labels: Vec<i64> = json_answer["outputs"][0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    let right = labels
        .iter()
        .zip(rows)
        .filter(|(l, (_, want))| *l == want)
        .count();
    assert!(right >= 37, "only {right} of 40 right");
    let probabilities: Vec<f32> = json_answer["outputs"][1]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();

    // Flat data reads the same as nested.
    let flat: Vec<f32> = rows.iter().flat_map(|(p, _)| p.clone()).collect();
    request["inputs"][0]["data"] = json!(flat);
    let (_, flat_answer) = server.post_json("/v2/models/digits/infer", &request).await;
    assert_eq!(flat_answer["outputs"], json_answer["outputs"]);

    // Binary in, binary out (all outputs, by the request parameter).
    let bytes: Vec<u8> = flat.iter().flat_map(|v| v.to_le_bytes()).collect();
    let header = json!({
        "id": "req-8",
        "parameters": {"binary_data_output": true},
        "inputs": [{"name": "pixels", "shape": [40, 64], "datatype": "FP32",
                    "parameters": {"binary_data_size": bytes.len()}}],
    });
    let (status, headers, body) =
        post_binary(&server, "/v2/models/digits/infer", &header, &bytes).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers["content-type"], "application/octet-stream");
    let (answer, blobs) = split_binary(&headers, &body);
    assert_eq!(answer["id"], "req-8");
    assert_eq!(answer["outputs"][0]["shape"], json!([40]));
    assert_eq!(i64s(&blobs[0]), labels);
    // JSON numbers print the shortest text that reads back to the same f32.
    assert_eq!(f32s(&blobs[1]), probabilities);

    // Binary in, one output asked for as JSON and one as binary.
    let header = json!({
        "inputs": [{"name": "pixels", "shape": [40, 64], "datatype": "FP32",
                    "parameters": {"binary_data_size": bytes.len()}}],
        "outputs": [{"name": "stage", "parameters": {"binary_data": false}},
                    {"name": "label", "parameters": {"binary_data": true}}],
    });
    let (status, headers, body) =
        post_binary(&server, "/v2/models/digits/infer", &header, &bytes).await;
    assert_eq!(status, 200);
    let (answer, blobs) = split_binary(&headers, &body);
    let outputs = answer["outputs"].as_array().unwrap();
    assert_eq!(
        (
            outputs.len(),
            outputs[0]["name"].as_str(),
            outputs[1]["name"].as_str()
        ),
        (2, Some("stage"), Some("label"))
    );
    let stages = outputs[0]["data"].as_array().unwrap();
    assert!(stages.iter().any(|s| s == 0) && stages.iter().all(|s| s == 0 || s == 1));
    assert_eq!(i64s(&blobs[0]), labels);

    // A soft member's failure is reported in the response's parameters.
    let features =
        json!({"name": "x", "shape": [1, 32], "datatype": "FP32", "data": vec![0.1f32; 32]});
    let (status, shaky) = server
        .post_json("/v2/models/shaky/infer", &json!({"inputs": [features]}))
        .await;
    assert_eq!(status, 200, "{shaky}");
    let dropped = &shaky["parameters"]["dropped"][0];
    assert_eq!(
        (dropped["hierarchy"].as_str(), dropped["model"].as_str()),
        (Some("shaky"), Some("panicking"))
    );
    assert!(
        dropped["error"]
            .as_str()
            .unwrap()
            .contains("chaos was asked to panic"),
        "{dropped}"
    );

    // `trace: true` returns each model call.
    let traced = json!({"parameters": {"trace": true}, "inputs": [pixels_json(&rows[..2])]});
    let (_, answer) = server.post_json("/v2/models/digits/infer", &traced).await;
    let models: Vec<&str> = answer["parameters"]["trace"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["model"].as_str().unwrap())
        .collect();
    assert!(
        models.contains(&"features") && models.contains(&"digits"),
        "{models:?}"
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_element_type_round_trips_as_json_and_binary() {
    let server = TestServer::start(Limits::default()).await;
    // (model, datatype, JSON values, their little-endian bytes)
    let f16 = |v: f32| half::f16::from_f32(v).to_le_bytes().to_vec();
    let bf16 = |v: f32| half::bf16::from_f32(v).to_le_bytes().to_vec();
    let cases: Vec<(&str, &str, Value, Vec<u8>)> = vec![
        (
            "echo-fp16",
            "FP16",
            json!([[1.5, -2.0], [0.25, 65504.0]]),
            [1.5, -2.0, 0.25, 65504.0]
                .into_iter()
                .flat_map(f16)
                .collect(),
        ),
        (
            "echo-fp32",
            "FP32",
            json!([[1.5, -2.0], [0.1, 3.0e38]]),
            [1.5f32, -2.0, 0.1, 3.0e38]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        ),
        (
            "echo-fp64",
            "FP64",
            json!([[1.5, -2.0], [0.1, 1.0e300]]),
            [1.5f64, -2.0, 0.1, 1.0e300]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        ),
        (
            "echo-uint8",
            "UINT8",
            json!([[0, 1], [128, 255]]),
            vec![0, 1, 128, 255],
        ),
        (
            "echo-int32",
            "INT32",
            json!([[-2147483648, 1], [0, 2147483647]]),
            [i32::MIN, 1, 0, i32::MAX]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        ),
        (
            "echo-int64",
            "INT64",
            json!([[-9007199254740993i64, 1], [0, 9223372036854775807i64]]),
            [-9007199254740993i64, 1, 0, i64::MAX]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        ),
        (
            "echo-bf16",
            "BF16",
            Value::Null,
            [1.5, -2.0, 0.25, 3.0].into_iter().flat_map(bf16).collect(),
        ),
    ];
    for (model, datatype, values, bytes) in cases {
        let path = format!("/v2/models/{model}/infer");
        if !values.is_null() {
            let request = json!({"inputs": [{"name": "x", "shape": [2, 2], "datatype": datatype, "data": values}]});
            let (status, answer) = server.post_json(&path, &request).await;
            assert_eq!(status, 200, "{model}: {answer}");
            let output = &answer["outputs"][0];
            assert_eq!(
                (output["datatype"].as_str(), &output["shape"]),
                (Some(datatype), &json!([2, 2])),
                "{model}"
            );
            let flat: Vec<Value> = values
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|r| r.as_array().unwrap().clone())
                .collect();
            assert_eq!(output["data"], Value::Array(flat), "{model}");
        }
        let header = json!({
            "inputs": [{"name": "x", "shape": [2, 2], "datatype": datatype, "parameters": {"binary_data_size": bytes.len()}}],
            "outputs": [{"name": "x", "parameters": {"binary_data": true}}],
        });
        let (status, headers, body) = post_binary(&server, &path, &header, &bytes).await;
        assert_eq!(status, 200, "{model}: {}", String::from_utf8_lossy(&body));
        let (answer, blobs) = split_binary(&headers, &body);
        assert_eq!(answer["outputs"][0]["datatype"], datatype);
        assert_eq!(blobs, vec![bytes], "{model}");
    }
    // BF16 has no JSON form.
    let request =
        json!({"inputs": [{"name": "x", "shape": [1, 1], "datatype": "BF16", "data": [1.0]}]});
    let (status, error) = server
        .post_json("/v2/models/echo-bf16/infer", &request)
        .await;
    assert_eq!(
        (status, error["error"].as_str()),
        (
            400,
            Some("input `x`: BF16 data can only be sent as binary data")
        )
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_400_naming_what_was_wrong() {
    let server = TestServer::start(Limits::default()).await;
    let row = digits_test_rows()[0].0.clone();
    let pixels = |shape: Value, datatype: &str, data: Value| json!({"inputs": [{"name": "pixels", "shape": shape, "datatype": datatype, "data": data}]});
    let cases = [
        (
            pixels(json!([1, 64]), "FP64", json!(row)),
            "input `pixels` of model `digits` must be FP32, got FP64",
        ),
        (
            pixels(json!([1, 63]), "FP32", json!(row[..63])),
            "input `pixels` of model `digits` must have shape [N, 64], got [1, 63]",
        ),
        (
            pixels(json!([64]), "FP32", json!(row)),
            "input `pixels` of model `digits` must have shape [N, 64], got [64]",
        ),
        (
            // A shape far bigger than the data reserves nothing: the data's
            // length is compared with the shape before any buffer is made.
            pixels(json!([4_000_000_000u32, 64]), "FP32", json!(row)),
            "input `pixels`: its shape holds 256000000000 elements but its data has 64",
        ),
        (
            pixels(json!([2, 64]), "FP32", json!(row)),
            "input `pixels`: its shape holds 128 elements but its data has 64",
        ),
        (
            pixels(json!([1, 64]), "FP8", json!(row)),
            "input `pixels`: unknown datatype `FP8`",
        ),
        (
            pixels(json!([1, 64]), "FP32", json!(vec!["a"; 64])),
            "input `pixels`: element 0 is a string, not a FP32 value",
        ),
        (
            json!({"inputs": []}),
            "model `digits` needs input `pixels` (FP32 [N, 64])",
        ),
        (
            json!({"inputs": [{"name": "image", "shape": [1], "datatype": "FP32", "data": [1]}]}),
            "model `digits` has no input `image` (its inputs: pixels)",
        ),
        (
            json!({"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32"}]}),
            "input `pixels` has neither `data` nor `parameters.binary_data_size`",
        ),
        (
            json!({"input": []}),
            "the request is not a valid inference request: missing field `inputs`",
        ),
        (
            json!({"inputs": pixels(json!([1, 64]), "FP32", json!(row))["inputs"], "outputs": [{"name": "logits"}]}),
            "model `digits` has no output `logits` (its outputs: label, probabilities, confidence, stage)",
        ),
        (
            json!({"parameters": {"binary_data_output": "yes"}, "inputs": []}),
            "request parameter `binary_data_output` must be true or false, got \"yes\"",
        ),
    ];
    for (request, message) in cases {
        let (status, error) = server.post_json("/v2/models/digits/infer", &request).await;
        assert_eq!(status, 400, "{request}");
        assert!(
            error["error"].as_str().unwrap().starts_with(message),
            "{} vs {message}",
            error["error"]
        );
    }
    let (status, error) = read_json(
        server
            .client
            .post(server.url("/v2/models/digits/infer"))
            .body("{\"inputs\": [")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("not a valid inference request")
    );

    // Binary framing mistakes.
    let header = json!({"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "parameters": {"binary_data_size": 255}}]});
    let (status, _, body) =
        post_binary(&server, "/v2/models/digits/infer", &header, &[0; 255]).await;
    assert_eq!(status, 400);
    assert!(
        String::from_utf8_lossy(&body)
            .contains("needs 256 bytes of FP32, its binary_data_size is 255")
    );
    let header = json!({"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "parameters": {"binary_data_size": 256}}]});
    let (status, _, body) =
        post_binary(&server, "/v2/models/digits/infer", &header, &[0; 200]).await;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("only 200 are left"));
    let (status, _, body) =
        post_binary(&server, "/v2/models/digits/infer", &header, &[0; 260]).await;
    assert_eq!(status, 400);
    assert!(
        String::from_utf8_lossy(&body)
            .contains("4 bytes of binary data follow the JSON but no input claims them")
    );
    let response = server
        .client
        .post(server.url("/v2/models/digits/infer"))
        .header(LENGTH, "999")
        .body("{}")
        .send()
        .await
        .unwrap();
    let (status, error) = read_json(response).await;
    assert_eq!(status, 400);
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("says the JSON is 999 bytes")
    );

    // A plugin's own invalid-input error is a 400 with its message.
    let (status, error) = server
        .post_json("/v2/models/chaos/infer", &chaos_request(9))
        .await;
    assert_eq!(status, 400);
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("unknown action Some(9)"),
        "{error}"
    );

    // And the server still answers.
    let (status, _) = server
        .post_json(
            "/v2/models/digits/infer",
            &pixels(json!([1, 64]), "FP32", json!(row)),
        )
        .await;
    assert_eq!(status, 200);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_plugin_fails_only_its_request_with_its_message() {
    let server = TestServer::start(Limits::default()).await;
    let (status, error) = server
        .post_json("/v2/models/chaos/infer", &chaos_request(3))
        .await;
    assert_eq!(status, 500);
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("chaos was asked to panic"),
        "{error}"
    );
    let (status, error) = server
        .post_json("/v2/models/chaos/infer", &chaos_request(1))
        .await;
    assert_eq!(status, 500);
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("ran past its 300ms limit"),
        "{error}"
    );
    let (status, error) = server
        .post_json("/v2/models/chaos/infer", &chaos_request(2))
        .await;
    assert_eq!(status, 500);
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("ran out of memory"),
        "{error}"
    );
    let (status, answer) = server
        .post_json("/v2/models/chaos/infer", &chaos_request(0))
        .await;
    assert_eq!(
        (status, &answer["outputs"][0]["data"]),
        (200, &json!([1.0]))
    );
    let metrics = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for kind in ["trap", "timeout", "out_of_memory"] {
        let line = format!("aimass_plugin_failures_total{{node=\"chaos\",kind=\"{kind}\"}}");
        assert!(metrics.contains(&line), "/metrics lacks {line}");
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_answer_413_and_503_and_the_server_keeps_serving() {
    let server = TestServer::start(Limits {
        max_body_bytes: 64 << 10,
        max_concurrency: 1,
        request_timeout: Duration::from_millis(150),
        ..Limits::default()
    })
    .await;
    let row = digits_test_rows()[0].0.clone();
    let one =
        json!({"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": row}]});

    // Over the body limit: 413 with the limit named, and nothing lost.
    let big = vec![b' '; 1 << 20];
    let response = server
        .client
        .post(server.url("/v2/models/digits/infer"))
        .body(big)
        .send()
        .await
        .unwrap();
    let (status, error) = read_json(response).await;
    assert_eq!(status, 413);
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("over the server's limit of 65536 bytes"),
        "{error}"
    );
    assert_eq!(
        server.post_json("/v2/models/digits/infer", &one).await.0,
        200
    );

    // Past the request timeout: 503, while the plugin is still looping
    // (its own limit is 300 ms).
    let looping = chaos_request(1);
    let (status, error) = server.post_json("/v2/models/chaos/infer", &looping).await;
    assert_eq!(status, 503);
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("did not answer within the server's request timeout of 150 ms"),
        "{error}"
    );

    // One request at a time: a second one while the first runs gets 503.
    // The two race for the one slot, so a round where the probe won is
    // played again.
    let mut refused = None;
    for _round in 0..5 {
        let first = {
            let client = server.client.clone();
            let url = server.url("/v2/models/chaos/infer");
            let body = looping.to_string();
            tokio::spawn(async move {
                read_json(client.post(url).body(body).send().await.unwrap()).await
            })
        };
        tokio::time::sleep(Duration::from_millis(30)).await;
        for _ in 0..20 {
            let response = server
                .client
                .post(server.url("/v2/models/digits/infer"))
                .body(one.to_string())
                .send()
                .await
                .unwrap();
            if response.status() == 503 {
                assert_eq!(response.headers()["retry-after"], "1");
                refused = Some(read_json(response).await.1);
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let (status, error) = first.await.unwrap();
        if refused.is_some() {
            assert_eq!(status, 503);
            assert!(
                error["error"].as_str().unwrap().contains("request timeout"),
                "{error}"
            );
            break;
        }
    }
    let refused = refused.expect("no 503 while the server was full");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("limit of 1 inference requests at once"),
        "{refused}"
    );
    assert_eq!(
        server.post_json("/v2/models/digits/infer", &one).await.0,
        200
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_requests_in_flight_finish() {
    let server = TestServer::start(Limits::default()).await;
    let looping = chaos_request(1);
    let in_flight = {
        let client = server.client.clone();
        let url = server.url("/v2/models/chaos/infer");
        tokio::spawn(async move {
            read_json(
                client
                    .post(url)
                    .body(looping.to_string())
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let base = server.base.clone();
    server.stop().await.unwrap();
    // The looping call ran to its plugin's 300 ms deadline and was answered,
    // not cut off.
    let (status, error) = in_flight.await.unwrap();
    assert_eq!(status, 500);
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("ran past its 300ms limit")
    );
    assert!(
        reqwest::get(format!("{base}/v2/health/live"))
            .await
            .is_err(),
        "still listening"
    );
}
