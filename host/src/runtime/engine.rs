//! The one wasmtime engine every plugin runs on, and its epoch ticker.

use super::error::RuntimeError;
use std::time::Duration;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances; call deadlines are counted in these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Sizing of the engine shared by all plugins.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Instances that may be alive at once, across all plugins.
    pub max_instances: u32,
    /// The largest linear memory any instance may have, in bytes.
    pub max_memory_bytes: usize,
    /// Where compiled components are cached; `None` compiles on every load.
    pub compile_cache: Option<std::path::PathBuf>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            max_instances: 64,
            max_memory_bytes: 256 << 20,
            compile_cache: None,
        }
    }
}

// A component built by rustc for wasm32-wasip2 holds a few core instances
// (the program, the WASI adapter, shims), each with its own memory or table.
const CORE_ITEMS_PER_COMPONENT: u32 = 8;

/// Builds the engine: component model, pooling allocator, epoch interruption.
pub fn build_engine(options: &EngineOptions) -> Result<Engine, RuntimeError> {
    let mut pooling = PoolingAllocationConfig::new();
    let items = options
        .max_instances
        .saturating_mul(CORE_ITEMS_PER_COMPONENT);
    pooling
        .total_component_instances(options.max_instances)
        .total_core_instances(items)
        .total_memories(items)
        .total_tables(items)
        .max_memory_size(options.max_memory_bytes);

    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    let engine = Engine::new(&config).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
    start_epoch_ticker(&engine);
    Ok(engine)
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until the engine is
/// dropped, so that call deadlines fire.
fn start_epoch_ticker(engine: &Engine) {
    // A weak handle lets the ticker stop once every real handle is gone.
    let engine_for_ticker = engine.weak();
    std::thread::Builder::new()
        .name("aimass-epoch".into())
        .spawn(move || {
            while let Some(engine) = engine_for_ticker.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .ok();
}
