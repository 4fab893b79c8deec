//! One method per RPC, each a thin adapter over the inference service.

use super::codec;
use super::proto::grpc_inference_service_server::GrpcInferenceService;
use super::proto::{self as pb, model_metadata_response::TensorMetadata};
use super::status;
use crate::server::admin::Refusal;
use crate::server::state::ServerState;
use crate::service::{ModelConfig, ModelStatistics, ServiceError, StatisticDuration};
use crate::tensor::{Dtype, TensorSpec};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

pub struct Grpc {
    pub state: Arc<ServerState>,
}

type Answer<T> = Result<Response<T>, Status>;

/// Requests of one stream answered at once; more wait for the client to
/// read answers (backpressure instead of an unbounded queue).
const STREAM_IN_FLIGHT: usize = 16;

impl Grpc {
    /// Management calls need what REST's need: the admin token as
    /// `authorization` metadata, or a client on this machine.
    fn admit<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let authorization = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        let from_loopback = request.remote_addr().is_some_and(|a| a.ip().is_loopback());
        match self.state.admin_token.admit(authorization, from_loopback) {
            Ok(()) => Ok(()),
            Err(Refusal::Unauthenticated(message)) => Err(Status::unauthenticated(message)),
            Err(Refusal::Forbidden(message)) => Err(Status::permission_denied(message)),
        }
    }

    async fn infer(
        state: &ServerState,
        request: pb::ModelInferRequest,
        request_id: Option<String>,
    ) -> Answer<pb::ModelInferResponse> {
        let received = Instant::now();
        let (model, version, mut request) =
            codec::decode(request, received).map_err(|e| status(&e))?;
        request.request_id = request_id;
        let answer = state
            .service
            .infer(&model, version.as_deref(), request)
            .await;
        let label = state.service.metric_label(&model);
        let code = match &answer {
            Ok(_) => 200,
            Err(e) => crate::server::error::ApiError::Service(e.clone())
                .status()
                .as_u16(),
        };
        crate::metrics::request(label, code, received.elapsed());
        answer
            .map(|a| Response::new(codec::encode(a)))
            .map_err(|e| status(&e))
    }
}

fn version(v: &str) -> Option<&str> {
    Some(v).filter(|v| !v.is_empty())
}

fn tensors(specs: &[TensorSpec]) -> Vec<TensorMetadata> {
    specs
        .iter()
        .map(|s| TensorMetadata {
            name: s.name.clone(),
            datatype: s.dtype.name().to_string(),
            shape: s.shape.clone(),
        })
        .collect()
}

fn data_type(dtype: Dtype) -> pb::DataType {
    match dtype {
        Dtype::Fp16 => pb::DataType::TypeFp16,
        Dtype::Fp32 => pb::DataType::TypeFp32,
        Dtype::Fp64 => pb::DataType::TypeFp64,
        Dtype::Bf16 => pb::DataType::TypeBf16,
        Dtype::Uint8 => pb::DataType::TypeUint8,
        Dtype::Int32 => pb::DataType::TypeInt32,
        Dtype::Int64 => pb::DataType::TypeInt64,
        Dtype::Bool => pb::DataType::TypeBool,
        Dtype::Int8 => pb::DataType::TypeInt8,
        Dtype::Int16 => pb::DataType::TypeInt16,
        Dtype::Uint16 => pb::DataType::TypeUint16,
        Dtype::Uint32 => pb::DataType::TypeUint32,
        Dtype::Uint64 => pb::DataType::TypeUint64,
        Dtype::Bytes => pb::DataType::TypeString,
    }
}

/// Triton's statistics (the ones REST sends as JSON) as the message.
fn statistics(stats: &ModelStatistics) -> pb::ModelStatistics {
    let spent = |d: &StatisticDuration| {
        Some(pb::StatisticDuration {
            count: d.count,
            ns: d.ns,
        })
    };
    let s = &stats.inference_stats;
    pb::ModelStatistics {
        name: stats.name.clone(),
        version: stats.version.clone(),
        last_inference: stats.last_inference,
        inference_count: stats.inference_count,
        execution_count: stats.execution_count,
        inference_stats: Some(pb::InferStatistics {
            success: spent(&s.success),
            fail: spent(&s.fail),
            queue: spent(&s.queue),
            compute_input: spent(&s.compute_input),
            compute_infer: spent(&s.compute_infer),
            compute_output: spent(&s.compute_output),
            cache_hit: spent(&s.cache_hit),
            cache_miss: spent(&s.cache_miss),
        }),
        batch_stats: stats
            .batch_stats
            .iter()
            .map(|b| pb::InferBatchStatistics {
                batch_size: b.batch_size,
                compute_input: spent(&b.compute_input),
                compute_infer: spent(&b.compute_infer),
                compute_output: spent(&b.compute_output),
            })
            .collect(),
    }
}

#[tonic::async_trait]
impl GrpcInferenceService for Grpc {
    async fn server_live(
        &self,
        _: Request<pb::ServerLiveRequest>,
    ) -> Answer<pb::ServerLiveResponse> {
        Ok(Response::new(pb::ServerLiveResponse { live: true }))
    }

    async fn server_ready(
        &self,
        _: Request<pb::ServerReadyRequest>,
    ) -> Answer<pb::ServerReadyResponse> {
        let ready = self.state.is_ready();
        Ok(Response::new(pb::ServerReadyResponse { ready }))
    }

    async fn model_ready(
        &self,
        request: Request<pb::ModelReadyRequest>,
    ) -> Answer<pb::ModelReadyResponse> {
        let r = request.into_inner();
        let ready = self
            .state
            .service
            .model(&r.name, version(&r.version))
            .is_ok();
        Ok(Response::new(pb::ModelReadyResponse { ready }))
    }

    async fn server_metadata(
        &self,
        _: Request<pb::ServerMetadataRequest>,
    ) -> Answer<pb::ServerMetadataResponse> {
        Ok(Response::new(pb::ServerMetadataResponse {
            name: "aimass".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            extensions: crate::server::EXTENSIONS
                .iter()
                .map(|e| e.to_string())
                .collect(),
        }))
    }

    async fn model_metadata(
        &self,
        request: Request<pb::ModelMetadataRequest>,
    ) -> Answer<pb::ModelMetadataResponse> {
        let r = request.into_inner();
        let service = &self.state.service;
        let model = service
            .model(&r.name, version(&r.version))
            .map_err(|e| status(&e))?;
        let name = model.model_name();
        Ok(Response::new(pb::ModelMetadataResponse {
            name: name.to_string(),
            versions: service.versions(name).iter().map(u64::to_string).collect(),
            platform: model.platform(),
            inputs: tensors(&model.signature.inputs),
            outputs: tensors(&model.signature.outputs),
        }))
    }

    async fn model_infer(
        &self,
        request: Request<pb::ModelInferRequest>,
    ) -> Answer<pb::ModelInferResponse> {
        // As REST: the client's `x-request-id` (or a new one) names every
        // log line of the request and comes back in the answer's metadata.
        let id = request
            .metadata()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 128)
            .map_or_else(crate::server::new_request_id, str::to_string);
        let span = tracing::info_span!("request", id = %id);
        let mut answer = Self::infer(&self.state, request.into_inner(), Some(id.clone()))
            .instrument(span)
            .await?;
        if let Ok(value) = id.parse() {
            answer.metadata_mut().insert("x-request-id", value);
        }
        Ok(answer)
    }

    type ModelStreamInferStream =
        Pin<Box<dyn Stream<Item = Result<pb::ModelStreamInferResponse, Status>> + Send>>;

    async fn model_stream_infer(
        &self,
        request: Request<Streaming<pb::ModelInferRequest>>,
    ) -> Answer<Self::ModelStreamInferStream> {
        let mut inbound = request.into_inner();
        let (answers, outbound) = tokio::sync::mpsc::channel(STREAM_IN_FLIGHT);
        let state = self.state.clone();
        // Requests answered in order, one at a time per stream (Triton's
        // non-decoupled models answer a stream in order too); a failed one
        // is an answer with its message, and the stream goes on.
        tokio::spawn(async move {
            loop {
                let next = match inbound.message().await {
                    Ok(Some(next)) => next,
                    Ok(None) => break,
                    Err(e) => {
                        let _ = answers.send(Err(e)).await;
                        break;
                    }
                };
                let answer = match Self::infer(&state, next, None).await {
                    Ok(response) => pb::ModelStreamInferResponse {
                        error_message: String::new(),
                        infer_response: Some(response.into_inner()),
                    },
                    Err(e) => pb::ModelStreamInferResponse {
                        error_message: e.message().to_string(),
                        infer_response: None,
                    },
                };
                if answers.send(Ok(answer)).await.is_err() {
                    break; // the client went away
                }
            }
        });
        let stream = tokio_stream::wrappers::ReceiverStream::new(outbound);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn model_config(
        &self,
        request: Request<pb::ModelConfigRequest>,
    ) -> Answer<pb::ModelConfigResponse> {
        let r = request.into_inner();
        let model = self
            .state
            .service
            .model(&r.name, version(&r.version))
            .map_err(|e| status(&e))?;
        let config = ModelConfig::of(&model);
        let parameter = |value: String| pb::ModelParameter {
            string_value: value,
        };
        let mut parameters = std::collections::HashMap::from([
            ("kind".to_string(), parameter(config.kind.into())),
            ("members".to_string(), parameter(config.members.join(","))),
        ]);
        if let Some(rollout) = &config.rollout {
            let json = serde_json::to_string(rollout).unwrap_or_default();
            parameters.insert("rollout".into(), parameter(json));
        }
        let scheduling_choice = config.dynamic_batching.as_ref().map(|batching| {
            pb::model_config::SchedulingChoice::DynamicBatching(pb::ModelDynamicBatching {
                preferred_batch_size: batching
                    .preferred_batch_sizes
                    .iter()
                    .map(|&n| i32::try_from(n).unwrap_or(i32::MAX))
                    .collect(),
                max_queue_delay_microseconds: batching.max_queue_delay_us,
            })
        });
        let config = pb::ModelConfig {
            input: config
                .inputs
                .iter()
                .map(|s| pb::ModelInput {
                    name: s.name.clone(),
                    data_type: data_type(s.dtype).into(),
                    dims: s.shape.clone(),
                })
                .collect(),
            output: config
                .outputs
                .iter()
                .map(|s| pb::ModelOutput {
                    name: s.name.clone(),
                    data_type: data_type(s.dtype).into(),
                    dims: s.shape.clone(),
                })
                .collect(),
            name: config.name,
            platform: config.platform,
            backend: "aimass".into(),
            max_batch_size: 0,
            parameters,
            scheduling_choice,
        };
        Ok(Response::new(pb::ModelConfigResponse {
            config: Some(config),
        }))
    }

    async fn model_statistics(
        &self,
        request: Request<pb::ModelStatisticsRequest>,
    ) -> Answer<pb::ModelStatisticsResponse> {
        let r = request.into_inner();
        let service = &self.state.service;
        let all = if r.name.is_empty() {
            service.all_statistics()
        } else {
            let model = service
                .model(&r.name, version(&r.version))
                .map_err(|e| status(&e))?;
            vec![service.statistics(&model.name)]
        };
        Ok(Response::new(pb::ModelStatisticsResponse {
            model_stats: all.iter().map(statistics).collect(),
        }))
    }

    async fn repository_index(
        &self,
        request: Request<pb::RepositoryIndexRequest>,
    ) -> Answer<pb::RepositoryIndexResponse> {
        self.admit(&request)?;
        let ready_only = request.into_inner().ready;
        let models = self
            .state
            .service
            .index(ready_only)
            .into_iter()
            .map(|e| pb::repository_index_response::ModelIndex {
                name: e.name,
                version: e.version,
                state: e.state.to_string(),
                reason: e.reason,
            })
            .collect();
        Ok(Response::new(pb::RepositoryIndexResponse { models }))
    }

    async fn repository_model_load(
        &self,
        request: Request<pb::RepositoryModelLoadRequest>,
    ) -> Answer<pb::RepositoryModelLoadResponse> {
        self.admit(&request)?;
        let r = request.into_inner();
        if let Some(key) = r
            .parameters
            .keys()
            .find(|k| *k == "config" || k.starts_with("file:"))
        {
            return Err(status(&ServiceError::client(format!(
                "load parameter `{key}` is not supported: aimass loads models from its config \
                 file ({}); edit it and load again",
                self.state.service.config().display()
            ))));
        }
        let took = self
            .state
            .service
            .load(&r.model_name)
            .await
            .map_err(|e| status(&e))?;
        tracing::info!(model = %r.model_name, "loaded over gRPC in {} ms", took.as_millis());
        Ok(Response::new(pb::RepositoryModelLoadResponse {}))
    }

    async fn repository_model_unload(
        &self,
        request: Request<pb::RepositoryModelUnloadRequest>,
    ) -> Answer<pb::RepositoryModelUnloadResponse> {
        self.admit(&request)?;
        let r = request.into_inner();
        let with_users = match r
            .parameters
            .get("unload_users")
            .map(|p| &p.parameter_choice)
        {
            None => false,
            Some(Some(pb::model_repository_parameter::ParameterChoice::BoolParam(b))) => *b,
            Some(_) => {
                return Err(status(&ServiceError::client(
                    "unload parameter `unload_users` must be true or false",
                )));
            }
        };
        let users = self
            .state
            .service
            .unload(&r.model_name, with_users)
            .map_err(|e| status(&e))?;
        tracing::info!(model = %r.model_name, with = ?users, "unloaded over gRPC");
        Ok(Response::new(pb::RepositoryModelUnloadResponse {}))
    }
}
