//! The Open Inference Protocol's gRPC binding (`inference.GRPCInferenceService`,
//! with the Triton extensions tritonclient calls) beside REST: a thin
//! adapter over the same inference service, with the same limits, admin
//! token (as `authorization` metadata) and messages. Errors map to gRPC
//! codes in one place, [`status`].

mod codec;
mod scan;
mod service;
mod stream_body;
mod transport;

/// The messages and the service, generated from `proto/inference.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("inference");
}

use super::state::ServerState;
use crate::error_kind::ErrorKind;
use crate::service::ServiceError;
use proto::grpc_inference_service_server::GrpcInferenceServiceServer;
use std::sync::Arc;
use tokio::net::TcpListener;

/// The gRPC status for a service error: the same message as REST.
pub fn status(error: &ServiceError) -> tonic::Status {
    let code = match error.kind {
        ErrorKind::Client => tonic::Code::InvalidArgument,
        ErrorKind::NotFound => tonic::Code::NotFound,
        ErrorKind::Conflict => tonic::Code::FailedPrecondition,
        ErrorKind::Unavailable => tonic::Code::Unavailable,
        ErrorKind::DeadlineExceeded => tonic::Code::DeadlineExceeded,
        ErrorKind::PluginFailure | ErrorKind::Internal => tonic::Code::Internal,
    };
    tonic::Status::new(code, within_trailer(&error.message, MAX_MESSAGE_BYTES))
}

/// The most bytes a status message may take in its trailer, once encoded:
/// stock clients refuse metadata over 8 KiB in all (grpc-go, grpcio).
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// `message` cut so that its `grpc-message` trailer, percent-encoded as
/// tonic encodes it (each byte outside printable ASCII, and each of
/// `` "#%<>`?{}`` and space, takes three), holds at most `max` bytes: a 4 KiB
/// message of 3-byte characters would take 12 KiB.
pub fn within_trailer(message: &str, max: usize) -> String {
    let encoded = |c: char| -> usize {
        if c.is_ascii_graphic() && !"\"#%<>`?{}".contains(c) {
            1
        } else {
            3 * c.len_utf8()
        }
    };
    if message.chars().map(encoded).sum::<usize>() <= max {
        return message.to_string();
    }
    // Room for the mark saying how much was cut (ASCII, at most 40 bytes).
    let budget = max.saturating_sub(40);
    let mut used = 0;
    let mut cut = 0;
    for (at, c) in message.char_indices() {
        used += encoded(c);
        if used > budget {
            break;
        }
        cut = at + c.len_utf8();
    }
    format!("{}... ({} bytes cut)", &message[..cut], message.len() - cut)
}

/// Serves gRPC on `listener` until `shutdown` resolves; calls in flight
/// finish first. The connections are this crate's own (see [`transport`]):
/// tonic's server has no connection cap nor header or body deadline.
pub async fn serve(
    listener: TcpListener,
    state: Arc<ServerState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limit = state.limits.max_body_bytes;
    let (health, health_service) = tonic_health::server::health_reporter();
    let reporting = tokio::spawn(report_health(health, state.clone()));
    let service = GrpcInferenceServiceServer::new(service::Grpc {
        state: state.clone(),
    })
    .max_decoding_message_size(limit)
    .max_encoding_message_size(usize::MAX);
    let router = tonic::service::Routes::new(health_service)
        .add_service(service)
        .prepare()
        .into_axum_router();
    let served = transport::serve(listener, router, state, shutdown).await;
    reporting.abort();
    served
}

/// How often `grpc.health.v1` is told whether the server is ready.
const HEALTH_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// Keeps `grpc.health.v1` (Kubernetes' gRPC probes) in step with
/// `/v2/health/ready`: not serving while loading or draining.
async fn report_health(reporter: tonic_health::server::HealthReporter, state: Arc<ServerState>) {
    use tonic_health::ServingStatus;
    let mut last = None;
    loop {
        let status = if state.is_ready() {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        if last != Some(status) {
            reporter.set_service_status("", status).await;
            reporter
                .set_service_status("inference.GRPCInferenceService", status)
                .await;
            last = Some(status);
        }
        tokio::time::sleep(HEALTH_EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::within_trailer;

    #[test]
    fn a_message_fits_its_trailer_once_encoded() {
        let encoded = |m: &str| -> usize {
            m.bytes()
                .map(|b| {
                    if b.is_ascii_graphic() && !b"\"#%<>`?{}".contains(&b) {
                        1
                    } else {
                        3
                    }
                })
                .sum()
        };
        assert_eq!(within_trailer("short é", 4096), "short é");
        for message in [
            "語".repeat(1400),
            "x".repeat(10_000),
            "% ".repeat(2500),
            "é".repeat(3000),
        ] {
            let cut = within_trailer(&message, 4096);
            assert!(encoded(&cut) <= 4096, "{} bytes encoded", encoded(&cut));
            assert!(cut.ends_with("bytes cut)"), "{cut}");
            assert!(message.starts_with(cut.split("...").next().unwrap()));
        }
    }
}
