//! One running plugin instance: a store plus the contract's exports.

use super::bindings::{ParamValue, SubModel};
use super::error::{GuestErrorKind, RuntimeError};
use super::info::ModelInfo;
use super::state::HostState;
use std::time::Duration;
use wasmtime::{Store, Trap};
use wasmtime_wasi_nn::Tensor;

/// A named host tensor.
pub type NamedTensor = (String, Tensor);

/// Limits for one instance.
#[derive(Debug, Clone, Copy)]
pub struct InstanceLimits {
    /// The most linear memory the instance may grow to, in bytes.
    pub memory_bytes: usize,
    /// The longest one call may run.
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
        let info = self
            .model
            .aimass_plugin_model()
            .call_info(&mut self.store)
            .await;
        let info = info.map_err(|e| self.failure("info", e))?;
        Ok(info.into())
    }

    /// Configures the instance with the node's parameters.
    pub async fn init(&mut self, params: Vec<(String, ParamValue)>) -> Result<(), RuntimeError> {
        self.arm_deadline();
        let result = self
            .model
            .aimass_plugin_model()
            .call_init(&mut self.store, &params)
            .await;
        result
            .map_err(|e| self.failure("init", e))?
            .map_err(|e| returned(&self.plugin, "init", e))
    }

    /// Runs the plugin on named tensors.
    pub async fn infer(
        &mut self,
        inputs: Vec<NamedTensor>,
    ) -> Result<Vec<NamedTensor>, RuntimeError> {
        let mut handles = Vec::with_capacity(inputs.len());
        for (name, tensor) in inputs {
            let handle = self
                .store
                .data_mut()
                .table
                .push(tensor)
                .map_err(|e| self.failure("infer", e.into()))?;
            handles.push((name, handle));
        }
        self.arm_deadline();
        let result = self
            .model
            .aimass_plugin_model()
            .call_infer(&mut self.store, &handles)
            .await;
        let outputs = result
            .map_err(|e| self.failure("infer", e))?
            .map_err(|e| returned(&self.plugin, "infer", e))?;
        let mut tensors = Vec::with_capacity(outputs.len());
        for (name, handle) in outputs {
            let tensor = self.store.data_mut().table.delete(handle);
            tensors.push((name, tensor.map_err(|e| self.failure("infer", e.into()))?));
        }
        Ok(tensors)
    }

    fn arm_deadline(&mut self) {
        let state = self.store.data_mut();
        state.last_error = None;
        state.deadline = std::time::Instant::now() + self.limits.call_timeout;
        self.store.set_epoch_deadline(1);
    }

    /// Says why a call failed in the host's terms: out of memory (the
    /// limiter refused a growth), timeout (the epoch deadline interrupted
    /// it) or a trap, with the panic message the plugin logged if any.
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
        if trap == Some(Trap::Interrupt) {
            return RuntimeError::Timeout {
                plugin,
                call,
                timeout: self.limits.call_timeout,
            };
        }
        let cause = match trap {
            Some(trap) => trap.to_string(),
            None => format!("{error:#}"),
        };
        let message = match state.last_error.take() {
            Some(logged) => format!("{logged} ({cause})"),
            None => cause,
        };
        RuntimeError::Trap {
            plugin,
            call,
            message,
        }
    }
}

fn returned(plugin: &str, call: &'static str, error: super::bindings::GuestError) -> RuntimeError {
    let (kind, message) = GuestErrorKind::split(error);
    RuntimeError::Plugin {
        plugin: plugin.to_string(),
        call,
        kind,
        message,
    }
}
