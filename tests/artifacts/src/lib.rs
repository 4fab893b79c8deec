//! Paths to every plugin, compiled to a `wasm32-wasip2` component by this
//! crate's build script, and [`foreach_plugin!`] over their names.

include!(concat!(env!("OUT_DIR"), "/plugins.rs"));
