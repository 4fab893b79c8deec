//! `aimass:plugin/tensors`: the `wasi:nn` tensor accessors a plugin needs
//! together, in one host call each (a host call costs a plugin about as much
//! as a small graph's arithmetic). Same handle table and memory accounting
//! as the `wasi:nn` tensor resource in [`super::nn_host`].

use super::bindings::aimass::plugin::tensors::{Host, TensorValue};
use super::bindings::wasi::nn::tensor::TensorType;
use super::nn_host::stale;
use super::state::HostState;
use super::wasi_nn::{TensorHandle, guest_type};
use wasmtime::component::Resource;

impl Host for HostState {
    fn describe(
        &mut self,
        handle: Resource<TensorHandle>,
    ) -> wasmtime::Result<(TensorType, Vec<u32>)> {
        let tensor = self.tensor(&handle)?;
        Ok((guest_type(tensor.dtype()), tensor.dims().to_vec()))
    }

    fn take(&mut self, handle: Resource<TensorHandle>) -> wasmtime::Result<TensorValue> {
        let tensor = self
            .take_tensor(handle.rep())
            .ok_or_else(|| stale("tensor"))?;
        Ok(TensorValue {
            ty: guest_type(tensor.dtype()),
            dimensions: tensor.dims().to_vec(),
            // No copy here when no one else shares the bytes (as
            // `into_backend`); lowering copies them into the plugin.
            data: Vec::from(tensor.into_data()),
        })
    }
}
