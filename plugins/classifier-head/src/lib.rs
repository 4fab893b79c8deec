//! `classifier-head`: a classifier over a `wasi:nn` graph's logits.
//!
//! The input tensor goes to the graph the operator granted (`graph`) as the
//! same host handle it arrived as: no copy through the plugin. Only the
//! logits are read back, to compute softmax probabilities, the label (argmax)
//! and the confidence (the top probability). Reused for teacher members and
//! students alike, by parameters.

use aimass_sdk::{
    DType, Error, Graph, ModelInfo, ModelKind, Params, Result, SubModel, Tensor, Tensors, ops,
};

const KNOWN: &[&str] = &[
    "graph",
    "graph-input",
    "graph-output",
    "features",
    "classes",
    "labels",
    "temperature",
    "kind",
];

/// The configured head.
#[derive(Debug)]
pub struct ClassifierHead {
    graph: Graph,
    graph_input: String,
    graph_output: String,
    features: Option<u32>,
    classes: Option<u32>,
    labels: Option<Vec<String>>,
    temperature: f32,
    kind: ModelKind,
}

fn kind_from_name(name: &str) -> Result<ModelKind> {
    Ok(match name {
        "classifier" => ModelKind::Classifier,
        "student" => ModelKind::Student,
        "ensemble-member" => ModelKind::EnsembleMember,
        "meta-model" => ModelKind::MetaModel,
        other => {
            return Err(Error::invalid_input(format!(
                "parameter `kind`: expected classifier, student, ensemble-member or meta-model, got {other:?}"
            )));
        }
    })
}

fn info(kind: ModelKind, features: Option<u32>, classes: Option<u32>) -> ModelInfo {
    let features = features.map_or(-1, i64::from);
    let classes = classes.map_or(-1, i64::from);
    ModelInfo::new("classifier-head", env!("CARGO_PKG_VERSION"), kind)
        .description("softmax, argmax and confidence over a wasi-nn graph's logits")
        .input("x", DType::Fp32, &[-1, features])
        .output("label", DType::I64, &[-1])
        .output("probabilities", DType::Fp32, &[-1, classes])
        .output("confidence", DType::Fp32, &[-1])
}

impl SubModel for ClassifierHead {
    fn describe() -> ModelInfo {
        info(ModelKind::Classifier, None, None)
    }

    fn init(params: &Params) -> Result<Self> {
        params.deny_unknown(KNOWN)?;
        let labels: Option<Vec<String>> = params.get("labels")?;
        let classes = match (params.get::<u32>("classes")?, &labels) {
            (Some(n), Some(l)) if n as usize != l.len() => {
                return Err(Error::invalid_input(format!(
                    "parameter `classes` is {n} but `labels` has {} entries",
                    l.len()
                )));
            }
            (n, l) => n.or(l.as_ref().map(|l| l.len() as u32)),
        };
        let temperature: f32 = params.get_or("temperature", 1.0)?;
        if !(temperature.is_finite() && temperature > 0.0) {
            return Err(Error::invalid_input(format!(
                "parameter `temperature` must be a positive number, got {temperature}"
            )));
        }
        let kind = match params.get::<String>("kind")? {
            Some(name) => kind_from_name(&name)?,
            None => ModelKind::Classifier,
        };
        let graph = Graph::by_name(&params.require::<String>("graph")?)?;
        Ok(ClassifierHead {
            graph,
            graph_input: params.get_or("graph-input", "input".to_string())?,
            graph_output: params.get_or("graph-output", "logits".to_string())?,
            features: params.get("features")?,
            classes,
            labels,
            temperature,
            kind,
        })
    }

    fn info(&self) -> ModelInfo {
        let info = info(self.kind, self.features, self.classes);
        match &self.labels {
            Some(labels) => info.labels(labels.clone()),
            None => info,
        }
    }

    fn infer(&mut self, mut inputs: Tensors) -> Result<Tensors> {
        let x = inputs.take("x")?;
        x.expect_dtype(DType::Fp32)?;
        let batch = x.expect_shape(&[-1, self.features.map_or(-1, i64::from)])?[0];

        let mut outputs = self
            .graph
            .compute(Tensors::new().with(self.graph_input.clone(), x))?;
        let logits = outputs.take(&self.graph_output).map_err(|_| {
            Error::model(format!(
                "graph `{}` has no output `{}` (it returned: [{}]); set `graph-output`",
                self.graph.name(),
                self.graph_output,
                outputs.names().collect::<Vec<_>>().join(", ")
            ))
        })?;
        // Read (shape, type, values), never passed on: one host call.
        let logits = logits.into_local();
        let shape = logits.shape();
        let classes = match shape.as_slice() {
            [rows, classes] if *rows == batch && *classes > 0 => *classes as usize,
            _ => {
                return Err(Error::model(format!(
                    "graph `{}` output `{}` has shape {shape:?}; expected [{batch}, classes]",
                    self.graph.name(),
                    self.graph_output
                )));
            }
        };
        if let Some(expected) = self.classes
            && expected as usize != classes
        {
            return Err(Error::model(format!(
                "graph `{}` returned {classes} classes, the node is configured for {expected}",
                self.graph.name()
            )));
        }

        let mut probabilities = logits.into_vec::<f32>()?;
        if self.temperature != 1.0 {
            probabilities
                .iter_mut()
                .for_each(|v| *v /= self.temperature);
        }
        ops::softmax_rows(&mut probabilities, classes);
        let labels: Vec<i64> = ops::argmax_rows(&probabilities, classes)
            .into_iter()
            .map(|i| i as i64)
            .collect();
        let confidence: Vec<f32> = probabilities
            .chunks(classes)
            .zip(&labels)
            .map(|(row, &label)| row[label as usize])
            .collect();

        Ok(Tensors::new()
            .with("label", Tensor::new(&[batch], &labels)?)
            .with(
                "probabilities",
                Tensor::new(&[batch, classes as u32], &probabilities)?,
            )
            .with("confidence", Tensor::new(&[batch], &confidence)?))
    }
}

aimass_sdk::export_sub_model!(ClassifierHead);
