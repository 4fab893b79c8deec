//! The Open Inference Protocol's gRPC binding (`inference.GRPCInferenceService`,
//! with the Triton extensions tritonclient calls) beside REST: a thin
//! adapter over the same inference service, with the same limits, admin
//! token (as `authorization` metadata) and messages. Errors map to gRPC
//! codes in one place, [`status`].

mod codec;
mod service;

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
    tonic::Status::new(code, error.message.clone())
}

/// Serves gRPC on `listener` until `shutdown` resolves; calls in flight
/// finish first.
pub async fn serve(
    listener: TcpListener,
    state: Arc<ServerState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let limit = state.limits.max_body_bytes;
    let service = GrpcInferenceServiceServer::new(service::Grpc { state })
        .max_decoding_message_size(limit)
        .max_encoding_message_size(usize::MAX);
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(service)
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            shutdown,
        )
        .await
}
