//! `aimass:plugin/tensors`: the `wasi:nn` tensor accessors a plugin needs
//! together, in one host call each (a host call costs a plugin about as much
//! as a small graph's arithmetic). Same handle table and memory accounting
//! as the `wasi:nn` tensor resource in [`super::host`].

use super::host::stale;
use super::{TensorHandle, WasiNnView, guest_type};
use crate::runtime::bindings::GuestDatatype;
use crate::runtime::bindings::aimass::plugin::tensors::{Host, TensorValue};
use crate::runtime::contract::MAX_RANK;
use crate::tensor::Tensor;
use wasmtime::component::Resource;

impl Host for WasiNnView<'_> {
    fn describe(
        &mut self,
        handle: Resource<TensorHandle>,
    ) -> wasmtime::Result<(GuestDatatype, Vec<u32>)> {
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

    fn create(
        &mut self,
        ty: GuestDatatype,
        dimensions: Vec<u32>,
        data: Vec<u8>,
    ) -> wasmtime::Result<Resource<TensorHandle>> {
        if dimensions.len() > MAX_RANK {
            wasmtime::bail!(
                "tensors.create: {} dimensions, the most is {MAX_RANK}",
                dimensions.len()
            );
        }
        let tensor = Tensor::new(ty.into(), dimensions, data)
            .map_err(|e| wasmtime::format_err!("tensors.create: {e}"))?;
        self.push_tensor(tensor)
    }
}
