//! Reading request bodies so that no client can hold what others need: a
//! size limit answered from `Content-Length` before anything is read (413),
//! a deadline for the whole body (408), and a server-wide budget of body
//! bytes held in memory at once (503 when spent), charged as bytes arrive
//! and given back when the request ends.

use super::error::ApiError;
use axum::body::Body;
use axum::http::{HeaderMap, header};
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// The budget is counted in KiB so that a tokio semaphore (u32 permits per
/// acquire) covers bodies of up to 4 TiB.
const UNIT: usize = 1024;

/// Past the limit, the rest of a body without `Content-Length` is still
/// read (up to this much more, within the deadline) before answering 413: a
/// server that closes a socket with unread data makes the kernel reset the
/// connection, and the client would see a broken pipe instead of the error.
const DRAIN_BYTES: usize = 64 << 20;

/// The bytes of request bodies the server holds at once.
#[derive(Debug, Clone)]
pub struct BodyBudget {
    units: Arc<Semaphore>,
    total_bytes: usize,
}

impl BodyBudget {
    /// A budget of `bytes`.
    pub fn new(bytes: usize) -> Self {
        let units = bytes.div_ceil(UNIT).clamp(1, Semaphore::MAX_PERMITS);
        BodyBudget {
            units: Arc::new(Semaphore::new(units)),
            total_bytes: bytes,
        }
    }

    /// A charge of `bytes`, held until dropped.
    pub fn charge(&self, bytes: usize) -> Result<Option<OwnedSemaphorePermit>, ApiError> {
        let mut held = None;
        self.cover(&mut held, bytes)?;
        Ok(held)
    }

    /// Grows `held` to cover `bytes` in all (it covers whole units already).
    fn cover(&self, held: &mut Option<OwnedSemaphorePermit>, bytes: usize) -> Result<(), ApiError> {
        let have = held.as_ref().map_or(0, OwnedSemaphorePermit::num_permits);
        let need = bytes.div_ceil(UNIT);
        if need <= have {
            return Ok(());
        }
        let more = u32::try_from(need - have).unwrap_or(u32::MAX);
        let Ok(permit) = self.units.clone().try_acquire_many_owned(more) else {
            crate::metrics::rejected("body_memory");
            return Err(ApiError::Unavailable(format!(
                "the server holds its limit of {} bytes of request bodies at once \
                 (--max-body-memory-bytes); retry later",
                self.total_bytes
            )));
        };
        match held {
            Some(existing) => existing.merge(permit),
            None => *held = Some(permit),
        }
        Ok(())
    }
}

/// A body read whole, with its share of the budget: keep it alive for as
/// long as the bytes (or what is decoded from them) are.
#[derive(Debug)]
pub struct ReadBody {
    /// The bytes.
    pub bytes: Vec<u8>,
    charged: Option<OwnedSemaphorePermit>,
}

impl ReadBody {
    /// Charges `more` bytes beyond the body's own, for what is decoded from
    /// it and lives as long.
    pub fn charge_more(&mut self, budget: &BodyBudget, more: usize) -> Result<(), ApiError> {
        let total = self.bytes.len().saturating_add(more);
        budget.cover(&mut self.charged, total)
    }

    /// The bytes, and the charge for them: keep it as long as they live.
    pub fn into_parts(self) -> (Vec<u8>, Option<OwnedSemaphorePermit>) {
        (self.bytes, self.charged)
    }
}

/// Reads a whole body of at most `limit` bytes within `timeout`, charging
/// `budget` for it.
pub async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    timeout: Duration,
    budget: &BodyBudget,
) -> Result<ReadBody, ApiError> {
    let too_large = || {
        crate::metrics::rejected("too_large");
        ApiError::TooLarge(format!(
            "the request body is over the server's limit of {limit} bytes \
             (raise it with --max-body-bytes)"
        ))
    };
    let declared = match headers.get(header::CONTENT_LENGTH) {
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::BadRequest("header Content-Length is not a byte count".into())
                })?,
        ),
        None => None,
    };
    let mut charged = None;
    let mut bytes = Vec::new();
    if let Some(declared) = declared {
        let declared = usize::try_from(declared).unwrap_or(usize::MAX);
        if declared > limit {
            return Err(too_large());
        }
        // Address space only: pages become memory (and are charged) as the
        // bytes arrive, so a client that declares much and sends little
        // holds little of the budget.
        bytes.reserve_exact(declared);
    }
    let deadline = Instant::now() + timeout;
    let mut stream = body.into_data_stream();
    let mut total = 0usize;
    loop {
        let chunk = match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(chunk)) => chunk
                .map_err(|e| ApiError::BadRequest(format!("cannot read the request body: {e}")))?,
            Ok(None) => break,
            Err(_) => {
                crate::metrics::rejected("body_timeout");
                return Err(ApiError::RequestTimeout(format!(
                    "the request body did not arrive within {} ms ({total} bytes came); \
                     send it faster or raise --body-timeout-ms",
                    timeout.as_millis()
                )));
            }
        };
        total = total.saturating_add(chunk.len());
        if total > limit {
            if total > limit.saturating_add(DRAIN_BYTES) {
                break;
            }
            continue;
        }
        budget.cover(&mut charged, total)?;
        bytes.extend_from_slice(&chunk);
    }
    if total > limit {
        return Err(too_large());
    }
    Ok(ReadBody { bytes, charged })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_refuses_past_its_bytes_and_returns_them_when_dropped() {
        let budget = BodyBudget::new(10 * UNIT);
        let mut first = None;
        // Many small chunks cost what their sum does, not a unit each.
        for total in (100..=6 * UNIT).step_by(100) {
            budget.cover(&mut first, total).expect("fits");
        }
        assert_eq!(
            first.as_ref().map(OwnedSemaphorePermit::num_permits),
            Some(6)
        );
        let mut second = None;
        assert!(matches!(
            budget.cover(&mut second, 6 * UNIT),
            Err(ApiError::Unavailable(_))
        ));
        budget.cover(&mut second, 4 * UNIT).expect("the rest fits");
        drop(first);
        let mut third = None;
        budget.cover(&mut third, 6 * UNIT).expect("given back");
    }
}
