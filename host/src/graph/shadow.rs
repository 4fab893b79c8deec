//! Shadow: the primary answers; a copy of the request goes to the shadow on
//! a task of its own, whose answer is logged and dropped.

use super::builder::Builder;
use super::context::Context;
use super::error::ExecError;
use super::kind::HierarchySection;
use super::member::Member;
use super::model::{Built, Composition, Kind, Served};
use super::refs::{ModelRef, model_ref};
use crate::config::{ConfigError, ConfigFile, ShadowConfig};
use crate::tensor::NamedTensor;
use crate::tensor::Signature;
use futures::future::{BoxFuture, FutureExt};
use std::sync::Arc;
use tokio::sync::Semaphore;
use tracing::Instrument;

const DEFAULT_MAX_IN_FLIGHT: u32 = 16;
const DEFAULT_TIMEOUT_MS: u64 = 10_000;

fn refs(name: &str, s: &ShadowConfig) -> Vec<ModelRef> {
    vec![
        model_ref(&s.primary, &format!("shadow.{name}.primary")),
        model_ref(&s.shadow, &format!("shadow.{name}.shadow")),
    ]
}

fn check(file: &ConfigFile, name: &str, s: &ShadowConfig, errors: &mut Vec<ConfigError>) {
    let span = file.table_span("shadow", name);
    if s.max_in_flight == Some(0) {
        errors.push(
            file.error(
                span.clone(),
                format!("shadow.{name}.max_in_flight"),
                "0 shadow calls at once would never send a copy",
            )
            .fix(format!(
                "give it at least 1 (default {DEFAULT_MAX_IN_FLIGHT})"
            )),
        );
    }
    if s.timeout_ms == Some(0) {
        errors.push(
            file.error(
                span,
                format!("shadow.{name}.timeout_ms"),
                "a shadow budget of 0 ms fails every copy",
            )
            .fix(format!("give it at least 1 (default {DEFAULT_TIMEOUT_MS})")),
        );
    }
}

fn build(b: &Builder, name: &str, s: &ShadowConfig) -> Result<Built, ConfigError> {
    let key = format!("shadow.{name}");
    let primary = b.plain_member(&model_ref(&s.primary, &format!("{key}.primary")), None)?;
    let timeout = s.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
    let shadow = b.plain_member(
        &model_ref(&s.shadow, &format!("{key}.shadow")),
        Some(timeout),
    )?;
    let inputs = Builder::needs(&primary);
    b.feeds(
        &shadow,
        &inputs,
        "the primary's request",
        s.shadow.span(),
        &format!("{key}.shadow"),
    )?;
    let signature = Signature {
        inputs,
        outputs: primary.model.signature.outputs.clone(),
    };
    let slots = s.max_in_flight.unwrap_or(DEFAULT_MAX_IN_FLIGHT) as usize;
    let shadow = Shadow {
        primary,
        shadow,
        slots: Arc::new(Semaphore::new(slots)),
    };
    Ok((signature, Box::new(shadow)))
}

struct Shadow {
    primary: Member,
    shadow: Member,
    /// Shadow calls running at once; none free means no copy.
    slots: Arc<Semaphore>,
}

impl Shadow {
    /// Sends a copy of the request to the shadow, on a task of its own that
    /// can never delay or fail the primary: at most its slots at once (a
    /// request finding none free sends no copy, counted), within the
    /// shadow's timeout, with the request's parameters and id so switches
    /// and splitters inside it route as they would for the primary.
    fn spawn_copy(&self, owner: &str, context: &Context, inputs: &[NamedTensor]) {
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            crate::metrics::shadow_dropped(owner);
            tracing::debug!(shadow = %owner, "shadow busy: no copy sent");
            return;
        };
        // Shares the request's tensors; nothing is copied.
        let copy = self.shadow.bind(inputs);
        let shadow = self.shadow.clone();
        let owner = owner.to_string();
        let copied = Arc::new(Context::new(
            context.parameters.clone(),
            (context.id.clone(), context.log_id.clone()),
            false,
            None,
        ));
        tokio::spawn(
            async move {
                match copy {
                    Ok(inputs) => match shadow.call(&copied, inputs).await {
                        Ok(_) => {
                            tracing::debug!(shadow = %owner, model = %shadow.name(), "shadow answered")
                        }
                        Err(e) => {
                            tracing::warn!(shadow = %owner, model = %shadow.name(), "shadow failed: {e}")
                        }
                    },
                    Err(e) => tracing::warn!(shadow = %owner, "shadow not called: {e}"),
                }
                drop(slot);
            }
            // The request's span (its id) follows the shadow's log lines.
            .in_current_span(),
        );
    }
}

impl Composition for Shadow {
    fn members(&self) -> Vec<Arc<Served>> {
        vec![self.primary.model.clone(), self.shadow.model.clone()]
    }

    fn run<'a>(
        &'a self,
        name: &'a str,
        context: &'a Arc<Context>,
        inputs: Vec<NamedTensor>,
    ) -> BoxFuture<'a, Result<Vec<NamedTensor>, ExecError>> {
        async move {
            self.spawn_copy(name, context, &inputs);
            let bound = self.primary.take_bound(inputs)?;
            self.primary.call(context, bound).await
        }
        .boxed()
    }
}

impl HierarchySection for ShadowConfig {
    fn kind(&self) -> Kind {
        Kind::Shadow
    }

    fn max_batch_rows(&self) -> Option<u32> {
        self.max_batch_rows
    }

    fn refs(&self, name: &str) -> Vec<ModelRef> {
        refs(name, self)
    }

    fn check(&self, file: &ConfigFile, name: &str, errors: &mut Vec<ConfigError>) {
        check(file, name, self, errors)
    }

    fn build(&self, b: &Builder, name: &str) -> Result<Built, ConfigError> {
        build(b, name, self)
    }
}
