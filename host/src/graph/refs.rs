//! Where the config names models: each reference to a model with the key
//! and span to blame.

use crate::config::{MemberRef, Ref};
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
