//! Named tensors: what `infer` takes and returns.

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// An ordered list of named tensors: a sub-model's inputs or outputs.
#[derive(Debug, Default)]
pub struct Tensors {
    entries: Vec<(String, Tensor)>,
}

impl Tensors {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a tensor under `name`, builder style.
    pub fn with(mut self, name: impl Into<String>, tensor: Tensor) -> Self {
        self.push(name, tensor);
        self
    }

    /// Adds a tensor under `name`, replacing one already there.
    pub fn push(&mut self, name: impl Into<String>, tensor: Tensor) {
        let name = name.into();
        self.entries.retain(|(existing, _)| *existing != name);
        self.entries.push((name, tensor));
    }

    /// Removes and returns the tensor called `name`; a missing one is the
    /// caller's `invalid-input` error, listing what was given.
    pub fn take(&mut self, name: &str) -> Result<Tensor> {
        match self.entries.iter().position(|(n, _)| n == name) {
            Some(index) => {
                let (name, tensor) = self.entries.remove(index);
                Ok(tensor.labelled(name))
            }
            None => Err(Error::invalid_input(format!(
                "missing input `{name}`; given: [{}]",
                self.names().collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    /// The tensor called `name`, if any.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.entries.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    /// The names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(n, _)| n.as_str())
    }

    /// How many tensors there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl IntoIterator for Tensors {
    type Item = (String, Tensor);
    type IntoIter = std::vec::IntoIter<(String, Tensor)>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl FromIterator<(String, Tensor)> for Tensors {
    fn from_iter<I: IntoIterator<Item = (String, Tensor)>>(iter: I) -> Self {
        let mut tensors = Tensors::new();
        for (name, tensor) in iter {
            tensors.push(name, tensor);
        }
        tensors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_removes_and_reports_missing_names() {
        let mut t = Tensors::new()
            .with("a", Tensor::new(&[1], &[1f32]).unwrap())
            .with("b", Tensor::new(&[1], &[2f32]).unwrap());
        assert_eq!(t.take("a").unwrap().to_vec::<f32>().unwrap(), vec![1.0]);
        let err = t.take("a").unwrap_err();
        assert_eq!(err.message(), "missing input `a`; given: [b]");
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn push_replaces_same_name() {
        let mut t = Tensors::new();
        t.push("x", Tensor::new(&[1], &[1f32]).unwrap());
        t.push("x", Tensor::new(&[1], &[2f32]).unwrap());
        assert_eq!(t.len(), 1);
        assert_eq!(t.get("x").unwrap().to_vec::<f32>().unwrap(), vec![2.0]);
    }
}
