//! The export macro and the glue it expands to.

/// Exports a [`SubModel`](crate::SubModel) as this component's `model`
/// interface. Invoke it once, at the crate root of a `cdylib` plugin.
///
/// ```
/// use aimass_sdk::{DType, ModelInfo, ModelKind, Params, Result, SubModel, Tensors};
///
/// struct Identity;
///
/// impl SubModel for Identity {
///     fn describe() -> ModelInfo {
///         ModelInfo::new("identity", "0.1.0", ModelKind::Other)
///             .input("x", DType::Fp32, &[-1])
///             .output("x", DType::Fp32, &[-1])
///     }
///     fn init(_: &Params) -> Result<Self> {
///         Ok(Identity)
///     }
///     fn infer(&mut self, inputs: Tensors) -> Result<Tensors> {
///         Ok(inputs)
///     }
/// }
///
/// aimass_sdk::export_sub_model!(Identity);
/// # fn main() {}
/// ```
///
/// A type that is not a sub-model is refused where the macro names it:
///
/// ```compile_fail
/// struct NotAModel;
/// aimass_sdk::export_sub_model!(NotAModel);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! export_sub_model {
    ($model:ty $(,)?) => {
        const _: () = {
            // Checked first, so a type that is no sub-model is reported at
            // the author's type name rather than inside the glue below.
            fn must_implement_sub_model<T: $crate::SubModel>() {}
            let _ = must_implement_sub_model::<$model>;
        };

        // The component's exports exist only in WebAssembly; natively (a
        // plugin's unit tests) their names would not even link.
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            ::std::thread_local! {
                static AIMASS_INSTANCE: ::core::cell::RefCell<::core::option::Option<$model>> =
                    const { ::core::cell::RefCell::new(::core::option::Option::None) };
            }

            struct AimassExport;

            impl $crate::bindings::exports::aimass::plugin::model::Guest for AimassExport {
                fn info() -> $crate::ModelInfo {
                    $crate::__private::info::<$model>(&AIMASS_INSTANCE)
                }
                fn init(
                    params: $crate::__private::RawParams,
                ) -> ::core::result::Result<(), $crate::Error> {
                    $crate::__private::init::<$model>(&AIMASS_INSTANCE, params)
                }
                fn infer(
                    inputs: $crate::__private::RawTensors,
                ) -> ::core::result::Result<$crate::__private::RawTensors, $crate::Error> {
                    $crate::__private::infer::<$model>(&AIMASS_INSTANCE, inputs)
                }
            }

    $crate::bindings::export!(AimassExport with_types_in $crate::bindings);
        };
    };
}

/// What the macro expands to calls these; not a public API.
#[doc(hidden)]
pub mod __private {
    use crate::bindings::wasi::nn::inference::NamedTensor;
    use crate::{Error, ModelInfo, ParamValue, Params, SubModel, Tensor};
    use std::cell::RefCell;
    use std::sync::Once;
    use std::thread::LocalKey;

    pub use wit_bindgen;

    /// The contract's parameter list.
    pub type RawParams = Vec<(String, ParamValue)>;
    /// The contract's named-tensor list.
    pub type RawTensors = Vec<NamedTensor>;
    /// Where the macro keeps the instance's model between calls.
    pub type Slot<T> = LocalKey<RefCell<Option<T>>>;

    pub fn info<T: SubModel>(slot: &'static Slot<T>) -> ModelInfo {
        slot.with_borrow(|model| match model {
            Some(model) => model.info(),
            None => T::describe(),
        })
    }

    pub fn init<T: SubModel>(slot: &'static Slot<T>, params: RawParams) -> Result<(), Error> {
        route_panics_to_host_log();
        let model = T::init(&Params::from(params))?;
        slot.set(Some(model));
        Ok(())
    }

    pub fn infer<T: SubModel>(
        slot: &'static Slot<T>,
        inputs: RawTensors,
    ) -> Result<RawTensors, Error> {
        slot.with_borrow_mut(|model| {
            let model = model.as_mut().ok_or_else(|| {
                Error::internal("infer was called before init; the host must call init first")
            })?;
            let inputs = inputs
                .into_iter()
                .map(|(name, tensor)| (name, Tensor::from_host(tensor)))
                .collect();
            let outputs = model.infer(inputs)?;
            Ok(outputs
                .into_iter()
                .map(|(name, tensor)| (name, tensor.into_host()))
                .collect())
        })
    }

    /// A panic traps the instance; its message would otherwise be lost in the
    /// guest's stderr, so send it to the host log where the host can attach
    /// it to the failed call.
    fn route_panics_to_host_log() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            std::panic::set_hook(Box::new(|panic| {
                crate::log::error(&format!("plugin panicked: {panic}"));
            }));
        });
    }
}
