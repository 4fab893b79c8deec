//! `wasi:nn` as a plugin sees it, implemented on [`WasiNnView`] with the
//! handle table and limits of [`super`].

use super::{
    Code, ContextHandle, Entry, ErrorHandle, GraphHandle, INLINE_MAX_BYTES, MAX_ERROR_MESSAGE,
    MAX_GRAPH_NAME, MAX_HANDLES, TensorHandle, WasiNnView, guest_wasi_nn_type,
};
use crate::nn::cancel::Cancel;
use crate::runtime::bindings::wasi::nn::{errors, graph, inference, tensor};
use crate::runtime::contract::MAX_RANK;
use crate::runtime::text::bounded;
use crate::tensor::Tensor;
use std::time::Instant;
use wasmtime::component::Resource;
use wasmtime_wasi_nn::backend::{BackendError, NamedTensor as BackendTensor};

/// Host bytes each live handle is charged besides its data.
const ENTRY_OVERHEAD: usize = 64;

type NnResult<T> = wasmtime::Result<Result<T, Resource<ErrorHandle>>>;

impl WasiNnView<'_> {
    /// Records a failure the plugin will read as a `wasi:nn` error.
    fn nn_error<T>(&mut self, code: Code, message: String) -> NnResult<T> {
        let message = bounded(&message, MAX_ERROR_MESSAGE);
        // Plugins usually pass these on as their own error; the log line is
        // for operators, within the plugin's log budget and at debug level.
        if self.budget.admit(self.node) {
            tracing::debug!(target: "aimass::plugin", node = %self.node, "wasi-nn: {message}");
        }
        let entry = Entry::Error { code, message };
        match self.nn.handles.insert(entry) {
            Some(rep) => Ok(Err(Resource::new_own(rep))),
            None => Err(self.too_many_handles()),
        }
    }

    fn too_many_handles(&mut self) -> wasmtime::Error {
        wasmtime::format_err!(
            "the plugin holds {} wasi-nn handles, the most one instance may hold",
            MAX_HANDLES
        )
    }

    /// Charges `tensor` to the plugin and gives it a handle.
    pub(super) fn push_tensor(
        &mut self,
        tensor: Tensor,
    ) -> wasmtime::Result<Resource<TensorHandle>> {
        let charged = tensor.len() + tensor.dims().len() * 4 + ENTRY_OVERHEAD;
        if self.memory.charge(charged).is_err() {
            wasmtime::bail!(
                "wasi-nn tensors of {} bytes would exceed the plugin's memory cap",
                charged
            );
        }
        match self.nn.handles.insert(Entry::Tensor { tensor, charged }) {
            Some(rep) => Ok(Resource::new_own(rep)),
            None => {
                self.memory.release(charged);
                Err(self.too_many_handles())
            }
        }
    }

    /// A tensor handle given in this call, or a trap naming the problem.
    pub(super) fn tensor(&self, handle: &Resource<TensorHandle>) -> wasmtime::Result<&Tensor> {
        match self.nn.handles.get(handle.rep()) {
            Some(Entry::Tensor { tensor, .. }) => Ok(tensor),
            _ => Err(stale("tensor")),
        }
    }

    /// Takes a tensor out of the table (into `compute`, or as an output).
    pub(crate) fn take_tensor(&mut self, rep: u32) -> Option<Tensor> {
        if !matches!(self.nn.handles.get(rep), Some(Entry::Tensor { .. })) {
            return None;
        }
        match self.nn.handles.remove(rep) {
            Some(Entry::Tensor { tensor, charged }) => {
                self.memory.release(charged);
                Some(tensor)
            }
            _ => None,
        }
    }
}

pub(super) fn stale(what: &str) -> wasmtime::Error {
    wasmtime::format_err!(
        "the plugin used a {what} handle that is not valid here: handles last only for the \
         call they were given in"
    )
}

impl tensor::Host for WasiNnView<'_> {}

impl tensor::HostTensor for WasiNnView<'_> {
    fn new(
        &mut self,
        dimensions: Vec<u32>,
        ty: tensor::TensorType,
        data: Vec<u8>,
    ) -> wasmtime::Result<Resource<TensorHandle>> {
        if dimensions.len() > MAX_RANK {
            wasmtime::bail!(
                "tensor constructor: {} dimensions, the most is {MAX_RANK}",
                dimensions.len()
            );
        }
        let tensor = Tensor::new(crate::tensor::Dtype::from(ty), dimensions, data)
            .map_err(|e| wasmtime::format_err!("tensor constructor: {e}"))?;
        self.push_tensor(tensor)
    }

    fn dimensions(&mut self, handle: Resource<TensorHandle>) -> wasmtime::Result<Vec<u32>> {
        Ok(self.tensor(&handle)?.dims().to_vec())
    }

    fn ty(&mut self, handle: Resource<TensorHandle>) -> wasmtime::Result<tensor::TensorType> {
        let dtype = self.tensor(&handle)?.dtype();
        dtype.wasi_nn().map(guest_wasi_nn_type).ok_or_else(|| {
            wasmtime::format_err!(
                "wasi:nn tensor.ty on a {dtype} tensor, a type wasi:nn lacks; read it with \
                 aimass:plugin/tensors.describe (aimass-sdk does)"
            )
        })
    }

    fn data(&mut self, handle: Resource<TensorHandle>) -> wasmtime::Result<Vec<u8>> {
        Ok(self.tensor(&handle)?.data().to_vec())
    }

    fn drop(&mut self, handle: Resource<TensorHandle>) -> wasmtime::Result<()> {
        // A handle from an earlier call was already released with its call.
        self.take_tensor(handle.rep());
        Ok(())
    }
}

impl graph::Host for WasiNnView<'_> {
    fn load(
        &mut self,
        _builder: Vec<Vec<u8>>,
        _encoding: graph::GraphEncoding,
        _target: graph::ExecutionTarget,
    ) -> NnResult<Resource<GraphHandle>> {
        self.nn_error(
            Code::UnsupportedOperation,
            "plugins cannot load graph bytes; the operator grants graphs by name \
             (use load-by-name)"
                .into(),
        )
    }

    fn load_by_name(&mut self, name: String) -> NnResult<Resource<GraphHandle>> {
        if name.len() > MAX_GRAPH_NAME {
            return self.nn_error(
                Code::NotFound,
                format!(
                    "no graph has a name of {} bytes (names are at most {MAX_GRAPH_NAME})",
                    name.len()
                ),
            );
        }
        let Some(graph) = self.nn.graphs.get(&name).cloned() else {
            return self.nn_error(
                Code::NotFound,
                format!("no graph named `{name}` is granted to this node"),
            );
        };
        match self.nn.handles.insert(Entry::Graph(graph)) {
            Some(rep) => Ok(Ok(Resource::new_own(rep))),
            None => Err(self.too_many_handles()),
        }
    }
}

impl graph::HostGraph for WasiNnView<'_> {
    fn init_execution_context(
        &mut self,
        handle: Resource<GraphHandle>,
    ) -> NnResult<Resource<ContextHandle>> {
        let Some(Entry::Graph(graph)) = self.nn.handles.get(handle.rep()) else {
            return Err(stale("graph"));
        };
        let graph = graph.clone();
        match graph.graph.init_execution_context() {
            Ok(context) => {
                let entry = Entry::Context {
                    context: Some(context),
                    graph,
                };
                match self.nn.handles.insert(entry) {
                    Some(rep) => Ok(Ok(Resource::new_own(rep))),
                    None => Err(self.too_many_handles()),
                }
            }
            Err(error) => self.nn_error(Code::RuntimeError, backend_message(&error)),
        }
    }

    fn drop(&mut self, handle: Resource<GraphHandle>) -> wasmtime::Result<()> {
        if let Some(Entry::Graph(_)) = self.nn.handles.get(handle.rep()) {
            self.nn.handles.remove(handle.rep());
        }
        Ok(())
    }
}

impl inference::Host for WasiNnView<'_> {}

impl inference::HostGraphExecutionContext for WasiNnView<'_> {
    async fn compute(
        &mut self,
        handle: Resource<ContextHandle>,
        inputs: Vec<(String, Resource<TensorHandle>)>,
    ) -> NnResult<Vec<(String, Resource<TensorHandle>)>> {
        let mut tensors = Vec::with_capacity(inputs.len());
        for (name, input) in inputs {
            let tensor = self
                .take_tensor(input.rep())
                .ok_or_else(|| stale("tensor"))?;
            tensors.push((name, tensor));
        }
        let Some(Entry::Context { context, graph }) = self.nn.handles.get_mut(handle.rep()) else {
            return Err(stale("execution context"));
        };
        let graph = graph.clone();
        let Some(mut context) = context.take() else {
            wasmtime::bail!("the execution context is already computing");
        };
        let input_bytes: usize = tensors.iter().map(|(_, t)| t.len()).sum();
        // Shared bytes are copied here, once, into the backend's own type.
        let mut backend_tensors = Vec::with_capacity(tensors.len());
        for (name, tensor) in tensors {
            match tensor.into_backend() {
                Ok(tensor) => backend_tensors.push(BackendTensor { name, tensor }),
                Err(e) => {
                    if let Some(Entry::Context { context: slot, .. }) =
                        self.nn.handles.get_mut(handle.rep())
                    {
                        *slot = Some(context);
                    }
                    let message = format!("input `{name}`: {e}");
                    return self.nn_error(Code::UnsupportedOperation, message);
                }
            }
        }
        let tensors = backend_tensors;
        let started = Instant::now();
        let mut cancel = Cancel::new(self.deadline);
        let (context, result) = if input_bytes > INLINE_MAX_BYTES || graph.is_slow() {
            let permit = match &self.nn.compute_slots {
                Some(slots) => Some(slots.clone().acquire_owned().await?),
                None => None,
            };
            // Dropped with this future when the call is given up: the
            // compute then stops at its next op instead of running on.
            let abandon = cancel.abandon_on_drop();
            let timed = graph.clone();
            let job = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                let result = cancel.run(|| run(&mut context, tensors));
                // Timed here: an abandoned compute is timed too.
                timed.record(started.elapsed());
                (context, result)
            });
            let done = job
                .await
                .map_err(|e| wasmtime::format_err!("the compute thread failed: {e}"))?;
            abandon.disarm();
            done
        } else {
            let result = cancel.run(|| run(&mut context, tensors));
            graph.record(started.elapsed());
            (context, result)
        };
        if let Some(Entry::Context { context: slot, .. }) = self.nn.handles.get_mut(handle.rep()) {
            *slot = Some(context);
        }
        // Native code cannot be interrupted; the deadline is enforced the
        // moment it returns.
        if Instant::now() >= self.deadline {
            *self.timed_out = true;
            wasmtime::bail!("the call ran past its deadline inside wasi-nn compute");
        }
        match result {
            Ok(outputs) => {
                let mut handles = Vec::with_capacity(outputs.len());
                for BackendTensor { name, tensor } in outputs {
                    let tensor = match Tensor::from_backend(tensor) {
                        Ok(tensor) => tensor,
                        Err(e) => {
                            let message = format!("the backend returned a malformed `{name}`: {e}");
                            return self.nn_error(Code::RuntimeError, message);
                        }
                    };
                    handles.push((name, self.push_tensor(tensor)?));
                }
                Ok(Ok(handles))
            }
            Err(message) => self.nn_error(Code::RuntimeError, message),
        }
    }

    fn drop(&mut self, handle: Resource<ContextHandle>) -> wasmtime::Result<()> {
        if let Some(Entry::Context { .. }) = self.nn.handles.get(handle.rep()) {
            self.nn.handles.remove(handle.rep());
        }
        Ok(())
    }
}

/// Runs a backend compute, turning a panic inside the native library into an
/// error rather than unwinding through the engine.
fn run(
    context: &mut wasmtime_wasi_nn::ExecutionContext,
    inputs: Vec<BackendTensor>,
) -> Result<Vec<BackendTensor>, String> {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        context.compute_with_io(inputs)
    }));
    match outcome {
        Ok(Ok(outputs)) => Ok(outputs),
        Ok(Err(error)) => Err(backend_message(&error)),
        Err(_) => Err("the backend panicked during compute".into()),
    }
}

fn backend_message(error: &BackendError) -> String {
    match error {
        BackendError::BackendAccess(inner) => format!("{inner:#}"),
        other => other.to_string(),
    }
}

impl errors::Host for WasiNnView<'_> {}

impl errors::HostError for WasiNnView<'_> {
    fn code(&mut self, handle: Resource<ErrorHandle>) -> wasmtime::Result<errors::ErrorCode> {
        let Some(Entry::Error { code, .. }) = self.nn.handles.get(handle.rep()) else {
            return Err(stale("error"));
        };
        Ok(match code {
            Code::RuntimeError => errors::ErrorCode::RuntimeError,
            Code::UnsupportedOperation => errors::ErrorCode::UnsupportedOperation,
            Code::NotFound => errors::ErrorCode::NotFound,
        })
    }

    fn data(&mut self, handle: Resource<ErrorHandle>) -> wasmtime::Result<String> {
        match self.nn.handles.get(handle.rep()) {
            Some(Entry::Error { message, .. }) => Ok(message.clone()),
            _ => Err(stale("error")),
        }
    }

    fn drop(&mut self, handle: Resource<ErrorHandle>) -> wasmtime::Result<()> {
        if let Some(Entry::Error { .. }) = self.nn.handles.get(handle.rep()) {
            self.nn.handles.remove(handle.rep());
        }
        Ok(())
    }
}
