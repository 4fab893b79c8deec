//! One running plugin instance: a store plus the contract's exports, every
//! call held to a wall-clock deadline and its outputs to the contract.

use super::bindings::TensorHandle;
use super::bindings::{ParamValue, SubModel};
use super::contract;
use super::error::{GuestErrorKind, RuntimeError};
use super::info::ModelInfo;
use super::state::{HostState, MAX_MESSAGE};
use super::text::bounded;
pub use crate::tensor::NamedTensor;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::error::Elapsed;
use wasmtime::component::Resource;
use wasmtime::{Store, Trap};

/// Limits for one instance.
#[derive(Debug, Clone, Copy)]
pub struct InstanceLimits {
    /// The most memory the instance may hold, in bytes: its linear memory
    /// plus the host memory it makes the host hold (`wasi:nn` tensors).
    pub memory_bytes: usize,
    /// The longest one call may take, wall-clock, whether the plugin runs
    /// wasm, waits in a host call or computes natively.
    pub call_timeout: Duration,
}

impl Default for InstanceLimits {
    fn default() -> Self {
        InstanceLimits {
            memory_bytes: 64 << 20,
            call_timeout: Duration::from_secs(5),
        }
    }
}

/// An instantiated plugin serving one node.
pub struct Instance {
    pub(crate) store: Store<HostState>,
    pub(crate) model: SubModel,
    pub(crate) plugin: String,
    pub(crate) limits: InstanceLimits,
    /// What the plugin declared after `init`; outputs are checked against it.
    pub(crate) contract: Option<Arc<ModelInfo>>,
    /// Counted on the node's live-instance gauge while it exists.
    pub(crate) _live: crate::metrics::InUse,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("plugin", &self.plugin)
            .field("node", &self.store.data().node())
            .finish_non_exhaustive()
    }
}

impl Instance {
    /// The plugin's description (as configured, once `init` has run).
    pub async fn info(&mut self) -> Result<ModelInfo, RuntimeError> {
        self.arm_deadline();
        let call = self.model.aimass_plugin_model().call_info(&mut self.store);
        let outcome = tokio::time::timeout(self.limits.call_timeout, call).await;
        let info = self.settle("info", outcome)?;
        Ok(info.into())
    }

    /// Holds every later `infer` to `info`, the plugin's own declaration.
    pub fn hold_to(&mut self, info: Arc<ModelInfo>) {
        self.contract = Some(info);
    }

    /// Configures the instance with the node's parameters.
    pub async fn init(&mut self, params: Vec<(String, ParamValue)>) -> Result<(), RuntimeError> {
        self.arm_deadline();
        let call = self
            .model
            .aimass_plugin_model()
            .call_init(&mut self.store, &params);
        let outcome = tokio::time::timeout(self.limits.call_timeout, call).await;
        self.settle("init", outcome)?
            .map_err(|e| returned(&self.plugin, "init", e))
    }

    /// Runs the plugin on named tensors.
    pub async fn infer(
        &mut self,
        inputs: Vec<NamedTensor>,
    ) -> Result<Vec<NamedTensor>, RuntimeError> {
        let rows = self
            .contract
            .as_deref()
            .and_then(|info| contract::input_rows(info, &inputs));
        let result = self.infer_unchecked(inputs).await;
        // Whatever happened, nothing of this call outlives it.
        self.store.data_mut().end_call();
        let outputs = result?;
        if let Some(info) = self.contract.as_deref() {
            contract::check_outputs(info, rows, &outputs).map_err(|message| {
                RuntimeError::Contract {
                    plugin: self.plugin.clone(),
                    call: "infer",
                    message,
                }
            })?;
        }
        Ok(outputs)
    }

    async fn infer_unchecked(
        &mut self,
        inputs: Vec<NamedTensor>,
    ) -> Result<Vec<NamedTensor>, RuntimeError> {
        let mut handles = Vec::with_capacity(inputs.len());
        for (name, tensor) in inputs {
            // The client's tensors are the request's, not the plugin's: they
            // are not charged to its cap.
            let entry = super::wasi_nn::Entry::Tensor { tensor, charged: 0 };
            let Some(rep) = self.store.data_mut().nn.handles.insert(entry) else {
                return Err(RuntimeError::Engine(format!(
                    "more inputs than one instance of `{}` can hold",
                    self.plugin
                )));
            };
            handles.push((name, Resource::<TensorHandle>::new_own(rep)));
        }
        self.arm_deadline();
        let call = self
            .model
            .aimass_plugin_model()
            .call_infer(&mut self.store, &handles);
        let outcome = tokio::time::timeout(self.limits.call_timeout, call).await;
        let outputs = self
            .settle("infer", outcome)?
            .map_err(|e| returned(&self.plugin, "infer", e))?;
        let mut tensors = Vec::with_capacity(outputs.len());
        for (name, handle) in outputs {
            let Some(tensor) = self.store.data_mut().wasi_nn().take_tensor(handle.rep()) else {
                return Err(RuntimeError::Contract {
                    plugin: self.plugin.clone(),
                    call: "infer",
                    message: format!(
                        "output `{}` is a tensor handle from an earlier call; handles last \
                         only for the call they were given in",
                        bounded(&name, 64)
                    ),
                });
            };
            tensors.push((name, tensor));
        }
        Ok(tensors)
    }

    fn arm_deadline(&mut self) {
        let state = self.store.data_mut();
        state.last_error = None;
        state.timed_out = false;
        state.deadline = std::time::Instant::now() + self.limits.call_timeout;
        self.store.set_epoch_deadline(1);
    }

    /// The outcome of a guest call in the host's terms: past the wall-clock
    /// deadline (the call future was dropped, wherever the guest was) it is a
    /// timeout; a trap is classified by [`Instance::failure`].
    fn settle<T>(
        &mut self,
        call: &'static str,
        outcome: Result<wasmtime::Result<T>, Elapsed>,
    ) -> Result<T, RuntimeError> {
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(self.failure(call, error)),
            Err(_) => Err(RuntimeError::Timeout {
                plugin: self.plugin.clone(),
                call,
                timeout: self.limits.call_timeout,
            }),
        }
    }

    /// Says why a call failed in the host's terms: out of memory (the
    /// limiter refused a growth or a host allocation), timeout (the deadline
    /// interrupted it) or a trap, with the panic message the plugin logged if
    /// any.
    fn failure(&mut self, call: &'static str, error: wasmtime::Error) -> RuntimeError {
        let plugin = self.plugin.clone();
        let state = self.store.data_mut();
        if let Some(asked) = state.memory.exceeded() {
            return RuntimeError::OutOfMemory {
                plugin,
                call,
                asked,
                limit: state.memory.max_bytes(),
            };
        }
        let trap = error.downcast_ref::<Trap>().copied();
        if trap == Some(Trap::Interrupt) || state.timed_out {
            return RuntimeError::Timeout {
                plugin,
                call,
                timeout: self.limits.call_timeout,
            };
        }
        let cause = if let Some(exit) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
            if exit.0 == 0 {
                "the plugin called exit with status 0 in the middle of the call".to_string()
            } else {
                // Rust's std on wasm32-wasip2 reports only failure through
                // `wasi:cli/exit`; the number the plugin passed is not sent.
                "the plugin called exit with a failure status (WASI 0.2 passes only \
                 success or failure, not the code)"
                    .to_string()
            }
        } else {
            match trap {
                Some(trap) => trap.to_string(),
                None => format!("{error:#}"),
            }
        };
        let message = match state.last_error.take() {
            Some(logged) => format!("{logged} ({cause})"),
            None => cause,
        };
        RuntimeError::Trap {
            plugin,
            call,
            message: bounded(&message, MAX_MESSAGE),
        }
    }
}

fn returned(plugin: &str, call: &'static str, error: super::bindings::GuestError) -> RuntimeError {
    let (kind, message) = GuestErrorKind::split(error);
    RuntimeError::Plugin {
        plugin: plugin.to_string(),
        call,
        kind,
        message: bounded(&message, MAX_MESSAGE),
    }
}
