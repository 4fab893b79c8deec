//! The engine's and each plugin's limits in range: checks of the config's
//! own numbers, before any hierarchy is looked at.

use super::{ConfigError, ConfigFile};

/// The most linear memory a wasm32 plugin can have, in MiB.
const MAX_WASM32_MB: u64 = 4096;

/// `engine.max_memory_mb`, and each plugin's `memory_mb` and `timeout_ms`.
pub fn check(file: &ConfigFile, errors: &mut Vec<ConfigError>) {
    let c = &file.config;
    if !(1..=MAX_WASM32_MB).contains(&c.engine.max_memory_mb) {
        errors.push(
            file.error(
                file.table_span("engine", ""),
                "engine.max_memory_mb",
                format!(
                    "{} MiB is outside 1..={MAX_WASM32_MB}",
                    c.engine.max_memory_mb
                ),
            )
            .fix("a plugin's memory is at most 4096 MiB"),
        );
    }
    for (name, plugin) in &c.plugins {
        let memory = *plugin.memory_mb.get_ref();
        if memory == 0 || memory > c.engine.max_memory_mb {
            errors.push(
                file.error(
                    plugin.memory_mb.span(),
                    format!("plugins.{name}.memory_mb"),
                    format!("{memory} MiB is outside 1..={}", c.engine.max_memory_mb),
                )
                .fix("lower it, or raise engine.max_memory_mb"),
            );
        }
        if *plugin.timeout_ms.get_ref() == 0 {
            errors.push(
                file.error(
                    plugin.timeout_ms.span(),
                    format!("plugins.{name}.timeout_ms"),
                    "a call budget of 0 ms fails every call",
                )
                .fix("give it at least 1"),
            );
        }
    }
}
