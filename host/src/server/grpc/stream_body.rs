//! `ModelStreamInfer`'s request body, message by message: each message is
//! gathered whole (at most `--max-body-bytes`), measured on the wire like a
//! unary `ModelInfer` (counts bounded, decoded size charged to the body
//! budget) and only then handed to tonic. The charge is held until the
//! next message arrives or the stream ends.

use super::scan;
use crate::server::body::BodyBudget;
use axum::body::Body;
use bytes::{Bytes, BytesMut};
use http_body::Frame;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::sync::OwnedSemaphorePermit;

/// gRPC's message prefix: a compression flag and a big-endian length.
const PREFIX: usize = 5;

/// A stream's body, measured a message at a time.
pub struct MeasuredStream {
    inner: Body,
    budget: BodyBudget,
    max_message: usize,
    gathered: BytesMut,
    charge: Option<OwnedSemaphorePermit>,
    ended: bool,
}

impl MeasuredStream {
    /// Measures the messages of `inner`.
    pub fn new(inner: Body, budget: BodyBudget, max_message: usize) -> Self {
        MeasuredStream {
            inner,
            budget,
            max_message,
            gathered: BytesMut::new(),
            charge: None,
            ended: false,
        }
    }

    /// The next whole message gathered, measured and charged; `None` until
    /// one is whole.
    fn next_message(&mut self) -> Option<Result<Bytes, tonic::Status>> {
        let header = self.gathered.get(..PREFIX)?;
        let length = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        let compressed = header[0] != 0;
        if length > self.max_message {
            return Some(Err(tonic::Status::resource_exhausted(format!(
                "a stream message of {length} bytes is over the server's limit of {} bytes \
                 (raise it with --max-body-bytes)",
                self.max_message
            ))));
        }
        if self.gathered.len() < PREFIX + length {
            return None;
        }
        let message = self.gathered.split_to(PREFIX + length).freeze();
        // The last message's charge is given back before this one's is
        // taken: a stream holds one message's worth at a time.
        self.charge = None;
        if !compressed {
            let cost = match scan::infer_request(&message[PREFIX..]) {
                Ok(cost) => cost,
                Err(refusal) => return Some(Err(tonic::Status::invalid_argument(refusal))),
            };
            match self.budget.charge(message.len().saturating_add(cost)) {
                Ok(charge) => self.charge = charge,
                Err(e) => return Some(Err(tonic::Status::unavailable(e.to_string()))),
            }
        }
        Some(Ok(message))
    }
}

impl http_body::Body for MeasuredStream {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        loop {
            match this.next_message() {
                Some(Ok(message)) => return Poll::Ready(Some(Ok(Frame::data(message)))),
                // tonic reads a Status among a body's errors as the call's.
                Some(Err(status)) => return Poll::Ready(Some(Err(Box::new(status)))),
                None => {}
            }
            if this.ended {
                // A partial message left at the end: tonic reports it.
                if this.gathered.is_empty() {
                    return Poll::Ready(None);
                }
                let rest = this.gathered.split().freeze();
                return Poll::Ready(Some(Ok(Frame::data(rest))));
            }
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => this.gathered.extend_from_slice(&data),
                    Err(trailers) => return Poll::Ready(Some(Ok(trailers))),
                },
                Some(Err(e)) => return Poll::Ready(Some(Err(Box::new(e)))),
                None => this.ended = true,
            }
        }
    }
}
