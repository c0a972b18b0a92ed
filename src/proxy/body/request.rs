//! The client's request body on its way to the upstream, kept for a second attempt where it may be sent
//! again.

use std::{
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};

use crate::proxy::error::ClientBodyError;

/// The client's request body on its way to the upstream. Its error is its own type, so a failed send
/// tells a client that stopped mid-upload or sent a malformed body (the client's doing: 400) from an
/// upstream that failed (502). With a [`Tape`], what it passes is kept (up to [`TAPE_MAX`]) so the request
/// can be sent again on another connection when the upstream refused it unprocessed (HTTP/2 GOAWAY).
#[derive(Debug)]
pub struct RequestBody {
    inner: Option<hyper::body::Incoming>,
    /// A body sent again: the bytes an earlier attempt read, then the end.
    replay: Option<Bytes>,
    tape: Option<Tape>,
}

/// Largest request body kept for a second attempt.
pub const TAPE_MAX: usize = 64 * 1024;

/// A request body that can be sent again: what it passed so far is kept (up to [`TAPE_MAX`]), and what it
/// did not read yet stays here, not in the attempt that was refused, so a second attempt sends the kept
/// bytes, then the rest.
#[derive(Debug, Clone)]
pub struct Tape(Arc<Mutex<TapeState>>);

#[derive(Debug)]
struct TapeState {
    bytes: BytesMut,
    /// Too large, or it had trailers: it cannot be sent again.
    spoiled: bool,
    /// What the client has not sent yet; `None` once read to the end, or moved to a later attempt.
    rest: Option<hyper::body::Incoming>,
}

impl Tape {
    fn new(body: hyper::body::Incoming) -> Self {
        Tape(Arc::new(Mutex::new(TapeState { bytes: BytesMut::new(), spoiled: false, rest: Some(body) })))
    }

    /// The body for another attempt: the bytes kept, then the rest. `None` when it cannot be sent again.
    /// The attempt it was taken from reads nothing more.
    pub fn again(&self) -> Option<RequestBody> {
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if t.spoiled {
            return None;
        }
        let kept = t.bytes.clone().freeze();
        let next =
            Tape(Arc::new(Mutex::new(TapeState { bytes: t.bytes.clone(), spoiled: false, rest: t.rest.take() })));
        Some(RequestBody { inner: None, replay: (!kept.is_empty()).then_some(kept), tape: Some(next) })
    }

    fn poll_frame(&self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let Some(rest) = &mut t.rest else { return Poll::Ready(None) };
        let polled = Pin::new(rest).poll_frame(cx).map_err(ClientBodyError);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => match frame.data_ref() {
                Some(data) if !t.spoiled && t.bytes.len() + data.len() <= TAPE_MAX => t.bytes.extend_from_slice(data),
                // Too large; or trailers, which are not kept: such a body is not sent again.
                _ => {
                    t.spoiled = true;
                    t.bytes = BytesMut::new();
                }
            },
            Poll::Ready(None) => t.rest = None,
            Poll::Ready(Some(Err(_))) => t.spoiled = true,
            Poll::Pending => {}
        }
        polled
    }
}

impl RequestBody {
    pub fn new(inner: hyper::body::Incoming) -> Self {
        RequestBody { inner: Some(inner), replay: None, tape: None }
    }

    /// A body that keeps what it passes on a [`Tape`], for a second attempt.
    pub fn taped(inner: hyper::body::Incoming) -> (Self, Tape) {
        let tape = Tape::new(inner);
        (RequestBody { inner: None, replay: None, tape: Some(tape.clone()) }, tape)
    }

    /// The tape that keeps what this body passes, if any.
    pub fn tape(&self) -> Option<&Tape> {
        self.tape.as_ref()
    }

    /// An empty body, for a second attempt of a request without one.
    pub fn empty() -> Self {
        RequestBody { inner: None, replay: None, tape: None }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = ClientBodyError;

    /// Empty data frames are not passed on: over HTTP/2 each would go out as an empty DATA frame, and
    /// servers take a stream of them for an attack (the `h2` crate sends GOAWAY ENHANCE_YOUR_CALM after
    /// 100 on a connection, failing every request on it). A client's HTTP/2 body that ends with an empty
    /// DATA frame carrying END_STREAM arrives here as one.
    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Some(bytes) = this.replay.take() {
            return Poll::Ready(Some(Ok(Frame::data(bytes))));
        }
        loop {
            let polled = match (&this.tape, &mut this.inner) {
                (Some(tape), _) => tape.poll_frame(cx),
                (None, Some(inner)) => Pin::new(inner).poll_frame(cx).map_err(ClientBodyError),
                (None, None) => return Poll::Ready(None),
            };
            match polled {
                Poll::Ready(Some(Ok(frame))) if frame.data_ref().is_some_and(Bytes::is_empty) => continue,
                other => return other,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        // A taped body does not know without reading (what it reads goes through the tape).
        self.replay.is_none() && self.tape.is_none() && self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.replay, &self.inner, &self.tape) {
            (None, Some(inner), _) => inner.size_hint(),
            (None, None, None) => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}
