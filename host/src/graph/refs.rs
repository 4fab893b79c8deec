//! Where the config names models: each hierarchy section by kind, and each
//! reference to a model with the key and span to blame.

use super::model::Kind;
use crate::config::{
    CascadeConfig, Config, DagConfig, EnsembleConfig, MemberRef, Ref, RolloutConfig,
    SequenceConfig, ShadowConfig, SplitterConfig, SwitchConfig,
};
use std::ops::Range;
use toml::Spanned;

/// A reference from a hierarchy to a model, with where it is written.
pub(super) struct ModelRef {
    pub key: String,
    pub name: String,
    pub span: Range<usize>,
}

/// The model a member names, and the span to blame.
pub(super) fn member_ref(member: &Spanned<MemberRef>, key: &str) -> ModelRef {
    match member.get_ref() {
        MemberRef::Name(name) => ModelRef {
            key: key.to_string(),
            name: name.clone(),
            span: member.span(),
        },
        MemberRef::Full(full) => model_ref(&full.model, &format!("{key}.model")),
    }
}

pub(super) fn model_ref(model: &Ref, key: &str) -> ModelRef {
    ModelRef {
        key: key.to_string(),
        name: model.get_ref().clone(),
        span: model.span(),
    }
}

/// One hierarchy's section of the config.
#[derive(Clone, Copy)]
pub(super) enum Section<'a> {
    Sequence(&'a SequenceConfig),
    Dag(&'a DagConfig),
    Ensemble(&'a EnsembleConfig),
    Switch(&'a SwitchConfig),
    Cascade(&'a CascadeConfig),
    Splitter(&'a SplitterConfig),
    Shadow(&'a ShadowConfig),
    Rollout(&'a RolloutConfig),
}

impl Section<'_> {
    pub fn kind(self) -> Kind {
        match self {
            Section::Sequence(_) => Kind::Sequence,
            Section::Dag(_) => Kind::Dag,
            Section::Ensemble(_) => Kind::Ensemble,
            Section::Switch(_) => Kind::Switch,
            Section::Cascade(_) => Kind::Cascade,
            Section::Splitter(_) => Kind::Splitter,
            Section::Shadow(_) => Kind::Shadow,
            Section::Rollout(_) => Kind::Rollout,
        }
    }

    /// The operator's `max_batch_rows`, if set.
    pub fn max_batch_rows(self) -> Option<u32> {
        match self {
            Section::Sequence(h) => h.max_batch_rows,
            Section::Dag(h) => h.max_batch_rows,
            Section::Ensemble(h) => h.max_batch_rows,
            Section::Switch(h) => h.max_batch_rows,
            Section::Cascade(h) => h.max_batch_rows,
            Section::Splitter(h) => h.max_batch_rows,
            Section::Shadow(h) => h.max_batch_rows,
            Section::Rollout(_) => None,
        }
    }
}

/// Every hierarchy in the config with its section.
pub(super) fn sections(c: &Config) -> Vec<(&String, Section<'_>)> {
    let mut all = Vec::new();
    all.extend(c.sequence.iter().map(|(n, h)| (n, Section::Sequence(h))));
    all.extend(c.dag.iter().map(|(n, h)| (n, Section::Dag(h))));
    all.extend(c.ensemble.iter().map(|(n, h)| (n, Section::Ensemble(h))));
    all.extend(c.switch.iter().map(|(n, h)| (n, Section::Switch(h))));
    all.extend(c.cascade.iter().map(|(n, h)| (n, Section::Cascade(h))));
    all.extend(c.splitter.iter().map(|(n, h)| (n, Section::Splitter(h))));
    all.extend(c.shadow.iter().map(|(n, h)| (n, Section::Shadow(h))));
    all.extend(c.rollouts.values().map(|r| (&r.key, Section::Rollout(r))));
    all
}
