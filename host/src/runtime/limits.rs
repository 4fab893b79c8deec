//! The per-instance memory cap, over linear memory and the host memory the
//! plugin makes the host hold (its `wasi:nn` tensors), as a limiter that
//! remembers it said no, so a failed call can be reported as out-of-memory
//! without parsing messages.

use wasmtime::ResourceLimiter;

/// Table elements any one table may grow to; plugins built by rustc use a
/// few hundred.
const MAX_TABLE_ELEMENTS: usize = 1 << 16;

/// Caps the memory one instance holds.
#[derive(Debug)]
pub struct MemoryCap {
    max_bytes: usize,
    /// Linear memory, summed over the component's memories.
    linear: usize,
    /// Host-side bytes charged to the plugin.
    host: usize,
    exceeded: Option<usize>,
}

impl MemoryCap {
    /// A cap of `max_bytes` over everything the instance holds.
    pub fn new(max_bytes: usize) -> Self {
        MemoryCap {
            max_bytes,
            linear: 0,
            host: 0,
            exceeded: None,
        }
    }

    /// The cap in bytes.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// The total a refused growth or charge asked for, if any was refused.
    pub fn exceeded(&self) -> Option<usize> {
        self.exceeded
    }

    /// Host bytes charged now.
    pub fn host_bytes(&self) -> usize {
        self.host
    }

    /// Charges `bytes` of host memory; refused (and remembered) past the cap.
    pub fn charge(&mut self, bytes: usize) -> Result<(), usize> {
        let total = self.linear.saturating_add(self.host).saturating_add(bytes);
        if total > self.max_bytes {
            self.exceeded = Some(total);
            return Err(total);
        }
        self.host += bytes;
        Ok(())
    }

    /// Gives back `bytes` charged earlier.
    pub fn release(&mut self, bytes: usize) {
        self.host = self.host.saturating_sub(bytes);
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Called with `current = 0` when a memory is created, so the sum
        // covers every memory of the component.
        let linear = self.linear.saturating_sub(current).saturating_add(desired);
        let total = linear.saturating_add(self.host);
        if total > self.max_bytes {
            self.exceeded = Some(total);
            // An error (rather than `Ok(false)`) traps at once: a plugin that
            // ignores a failed `memory.grow` cannot limp on.
            wasmtime::bail!(
                "memory cap of {} bytes exceeded (asked for {total} bytes)",
                self.max_bytes
            );
        }
        self.linear = linear;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_charges_and_linear_memory_share_one_cap() {
        let mut cap = MemoryCap::new(100);
        assert!(cap.memory_growing(0, 60, None).unwrap());
        assert!(cap.charge(30).is_ok());
        assert_eq!(cap.charge(20), Err(110));
        assert_eq!(cap.exceeded(), Some(110));
        assert!(cap.memory_growing(60, 80, None).is_err());
        cap.release(30);
        assert_eq!(cap.host_bytes(), 0);
        assert!(cap.memory_growing(60, 80, None).unwrap());
    }
}
