//! The `wasi:nn` resources one instance holds, by handle.
//!
//! Handles are never reused (a counter, not a free list), so a handle kept
//! from an earlier call finds nothing instead of someone else's tensor.
//! Tensors and errors live for one call: [`Handles::end_call`] drops them.
//! Graphs and execution contexts live as long as the instance, because a
//! plugin reaches its graphs once, in `init`.

use crate::nn::GrantedGraph;
use crate::tensor::Tensor;
use std::collections::HashMap;
use std::sync::Arc;
use wasmtime_wasi_nn::ExecutionContext;

/// Live handles one instance may hold at once.
pub const MAX_HANDLES: usize = 4096;

/// A `wasi:nn` error code, as the contract's `error-code` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The backend failed.
    RuntimeError,
    /// Not supported by this host.
    UnsupportedOperation,
    /// No such graph granted.
    NotFound,
}

/// One resource.
pub enum Entry {
    /// A tensor and the bytes of it charged to the plugin's cap.
    Tensor { tensor: Tensor, charged: usize },
    /// A failure the plugin may read.
    Error { code: Code, message: String },
    /// A granted graph.
    Graph(Arc<GrantedGraph>),
    /// An execution context; `None` while its compute runs elsewhere.
    Context {
        context: Option<ExecutionContext>,
        graph: Arc<GrantedGraph>,
    },
}

impl Entry {
    fn lasts_one_call(&self) -> bool {
        matches!(self, Entry::Tensor { .. } | Entry::Error { .. })
    }
}

/// The handle table of one instance.
#[derive(Default)]
pub struct Handles {
    entries: HashMap<u32, Entry>,
    last: u32,
}

impl Handles {
    /// Stores `entry`; `None` when the instance already holds
    /// [`MAX_HANDLES`].
    pub fn insert(&mut self, entry: Entry) -> Option<u32> {
        if self.entries.len() >= MAX_HANDLES {
            return None;
        }
        loop {
            self.last = self.last.wrapping_add(1);
            if self.last != 0 && !self.entries.contains_key(&self.last) {
                break;
            }
        }
        self.entries.insert(self.last, entry);
        Some(self.last)
    }

    /// The entry behind `rep`.
    pub fn get(&self, rep: u32) -> Option<&Entry> {
        self.entries.get(&rep)
    }

    /// The entry behind `rep`, mutably.
    pub fn get_mut(&mut self, rep: u32) -> Option<&mut Entry> {
        self.entries.get_mut(&rep)
    }

    /// Takes the entry behind `rep` out.
    pub fn remove(&mut self, rep: u32) -> Option<Entry> {
        self.entries.remove(&rep)
    }

    /// Drops every tensor and error of the call that just ended; returns the
    /// bytes that were charged for them.
    pub fn end_call(&mut self) -> usize {
        let mut released = 0;
        self.entries.retain(|_, entry| {
            if let Entry::Tensor { charged, .. } = entry {
                released += *charged;
            }
            !entry.lasts_one_call()
        });
        released
    }

    /// Live handles.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(bytes: usize) -> Entry {
        Entry::Tensor {
            tensor: Tensor::new(
                crate::tensor::Dtype::Uint8,
                vec![bytes as u32],
                vec![0; bytes],
            )
            .unwrap(),
            charged: bytes,
        }
    }

    #[test]
    fn handles_are_never_reused_and_tensors_end_with_the_call() {
        let mut handles = Handles::default();
        let first = handles.insert(tensor(10)).unwrap();
        let error = Entry::Error {
            code: Code::NotFound,
            message: "x".into(),
        };
        handles.insert(error).unwrap();
        assert_eq!(handles.end_call(), 10);
        assert_eq!(handles.len(), 0);
        let second = handles.insert(tensor(3)).unwrap();
        assert_ne!(first, second);
        assert!(handles.get(first).is_none());
    }

    #[test]
    fn the_table_is_bounded() {
        let mut handles = Handles::default();
        for _ in 0..MAX_HANDLES {
            assert!(handles.insert(tensor(0)).is_some());
        }
        assert!(handles.insert(tensor(0)).is_none());
    }
}
