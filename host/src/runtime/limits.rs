//! The per-instance memory cap, as a limiter that remembers it said no, so a
//! failed call can be reported as out-of-memory without parsing messages.

use wasmtime::ResourceLimiter;

/// Table elements any one table may grow to; plugins built by rustc use a
/// few hundred.
const MAX_TABLE_ELEMENTS: usize = 1 << 16;

/// Caps linear memory growth of one instance.
#[derive(Debug)]
pub struct MemoryCap {
    max_bytes: usize,
    exceeded: Option<usize>,
}

impl MemoryCap {
    /// A cap of `max_bytes` per linear memory.
    pub fn new(max_bytes: usize) -> Self {
        MemoryCap {
            max_bytes,
            exceeded: None,
        }
    }

    /// The cap in bytes.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// The size a refused growth asked for, if any growth was refused.
    pub fn exceeded(&self) -> Option<usize> {
        self.exceeded
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.exceeded = Some(desired);
            // An error (rather than `Ok(false)`) traps at once: a plugin that
            // ignores a failed `memory.grow` cannot limp on.
            wasmtime::bail!(
                "memory cap of {} bytes exceeded (asked for {desired} bytes)",
                self.max_bytes
            );
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
