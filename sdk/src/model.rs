//! The trait a sub-model implements.

use crate::error::Result;
use crate::info::ModelInfo;
use crate::params::Params;
use crate::tensors::Tensors;

/// A sub-model: implement this, then export it with
/// [`export_sub_model!`](crate::export_sub_model).
///
/// The host creates instances as it needs them; for each it calls
/// [`init`](SubModel::init) once with the operator's parameters for the node,
/// then [`infer`](SubModel::infer) any number of times, one call at a time.
/// See [`crate::kinds`] for an example of each kind of sub-model.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an aimass sub-model",
    label = "`export_sub_model!` needs a type that implements `aimass_sdk::SubModel`",
    note = "add `impl aimass_sdk::SubModel for {Self}` with `describe`, `init` and `infer`"
)]
pub trait SubModel: Sized + 'static {
    /// What the plugin is before any parameters are applied: what
    /// `aimass inspect` shows.
    fn describe() -> ModelInfo;

    /// Builds the model for one node from the operator's parameters. Refuse
    /// unknown or ill-typed parameters here (see [`Params::deny_unknown`]):
    /// the host reports the error at start-up, naming the node.
    fn init(params: &Params) -> Result<Self>;

    /// What the node is, as configured. Override it when parameters change
    /// the shapes, labels or description; the host type-checks hierarchies
    /// against this answer.
    fn info(&self) -> ModelInfo {
        Self::describe()
    }

    /// Runs the model on named inputs and returns named outputs.
    fn infer(&mut self, inputs: Tensors) -> Result<Tensors>;
}
