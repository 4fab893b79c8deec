//! One use of a model inside a hierarchy: which model, which tensors feed
//! its inputs, and how long it may take; binding those tensors and calling
//! it.

use super::context::Context;
use super::error::ExecError;
use super::model::Served;
use crate::tensor::NamedTensor;
use std::sync::Arc;
use std::time::Duration;

/// One use of a model inside a hierarchy.
#[derive(Clone)]
pub(super) struct Member {
    pub model: Arc<Served>,
    /// The member's input ← the tensor that feeds it.
    pub inputs: Vec<(String, String)>,
    pub timeout: Option<Duration>,
}

impl Member {
    pub fn name(&self) -> &str {
        &self.model.name
    }

    /// The member's inputs, renamed from the tensors available to it
    /// (shared, not copied: a tensor's bytes are reference-counted).
    pub fn bind(&self, available: &[NamedTensor]) -> Result<Vec<NamedTensor>, ExecError> {
        self.inputs
            .iter()
            .map(|(input, source)| {
                available
                    .iter()
                    .find(|(name, _)| name == source)
                    .map(|(_, t)| (input.clone(), t.clone()))
                    .ok_or_else(|| self.missing(source, available))
            })
            .collect()
    }

    /// The member's inputs, moved out of tensors no one else needs: a
    /// layer's outputs become the next layer's inputs.
    pub fn take_bound(
        &self,
        mut available: Vec<NamedTensor>,
    ) -> Result<Vec<NamedTensor>, ExecError> {
        let mut bound = Vec::with_capacity(self.inputs.len());
        for (i, (input, source)) in self.inputs.iter().enumerate() {
            let Some(at) = available.iter().position(|(name, _)| name == source) else {
                return Err(self.missing(source, &available));
            };
            let used_again = self.inputs[i + 1..].iter().any(|(_, s)| s == source);
            let tensor = if used_again {
                available[at].1.clone()
            } else {
                available.swap_remove(at).1
            };
            bound.push((input.clone(), tensor));
        }
        Ok(bound)
    }

    fn missing(&self, source: &str, available: &[NamedTensor]) -> ExecError {
        let have: Vec<&str> = available.iter().map(|(n, _)| n.as_str()).collect();
        ExecError::BadRequest(format!(
            "`{}` needs input `{source}`, not given (given: {})",
            self.name(),
            have.join(", ")
        ))
    }

    /// Calls the member on its bound inputs, within its timeout.
    pub async fn call(
        &self,
        context: &Arc<Context>,
        inputs: Vec<NamedTensor>,
    ) -> Result<Vec<NamedTensor>, ExecError> {
        let call = self.model.call(context, inputs);
        match self.timeout {
            None => call.await,
            Some(limit) => tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
                Err(ExecError::Timeout {
                    model: self.name().to_string(),
                    millis: limit.as_millis(),
                })
            }),
        }
    }

    /// Binds from the tensors available to it, then calls it.
    pub async fn invoke(
        &self,
        context: &Arc<Context>,
        available: &[NamedTensor],
    ) -> Result<Vec<NamedTensor>, ExecError> {
        let inputs = self.bind(available)?;
        self.call(context, inputs).await
    }
}

/// The tensor called `name` among `model`'s outputs.
pub(super) fn output<'a>(
    outputs: &'a [NamedTensor],
    name: &str,
    model: &str,
) -> Result<&'a crate::tensor::Tensor, ExecError> {
    outputs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, t)| t)
        .ok_or_else(|| ExecError::contract(model, format!("returned no `{name}`")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::Signature;
    use crate::tensor::Tensor;

    fn member(inputs: &[(&str, &str)]) -> Member {
        let signature = Signature {
            inputs: vec![],
            outputs: vec![],
        };
        Member {
            model: Arc::new(super::super::model::with_signature("m", signature)),
            inputs: inputs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            timeout: None,
        }
    }

    #[test]
    fn moved_inputs_are_renamed_and_a_shared_source_is_shared() {
        let x = Tensor::from_f32(vec![1], &[1.0]).unwrap();
        let available = vec![
            ("x".to_string(), x.clone()),
            ("y".to_string(), Tensor::from_f32(vec![1], &[2.0]).unwrap()),
        ];
        let bound = member(&[("a", "x"), ("b", "y"), ("c", "x")])
            .take_bound(available)
            .unwrap();
        let names: Vec<&str> = bound.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(bound[0].1.data().as_ptr(), x.data().as_ptr());
        assert_eq!(bound[2].1.data().as_ptr(), x.data().as_ptr());
        let err = member(&[("a", "z")]).take_bound(vec![]).unwrap_err();
        assert_eq!(err.to_string(), "`m` needs input `z`, not given (given: )");
    }
}
