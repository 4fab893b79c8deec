//! aimass: a WebAssembly plugin host for composable ML sub-models.
//!
//! Third-party sub-models are WebAssembly components built against the
//! contract in `wit/` with `aimass-sdk`; this crate loads them into a
//! sandbox ([`runtime`]) with no ambient capabilities.
// Anything a user or a plugin controls must come back as an error, never a
// panic: unwrap/expect are for tests only.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod capture;
pub mod cli;
pub mod config;
pub mod error_kind;
pub mod eval;
pub mod graph;
pub mod logging;
pub mod metrics;
pub mod nn;
pub mod printable;
pub mod repository;
pub mod runtime;
pub mod server;
pub mod service;
pub mod tensor;
