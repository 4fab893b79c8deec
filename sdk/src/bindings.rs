//! Bindings generated from the contract in `wit/`.
//!
//! Most authors never need these directly: [`crate::SubModel`],
//! [`crate::Tensor`] and [`crate::Graph`] wrap them. They are public for the
//! rare plugin that needs a part of `wasi:nn` the wrappers do not cover.
#![allow(missing_docs, unsafe_code, clippy::all)]

wit_bindgen::generate!({
    path: "../wit",
    world: "aimass:plugin/sub-model",
    pub_export_macro: true,
    export_macro_name: "export",
    default_bindings_module: "::aimass_sdk::bindings",
    runtime_path: "::aimass_sdk::__private::wit_bindgen::rt",
    generate_all,
    additional_derives: [PartialEq],
});
