//! The `grpc_stream` fault on the wire: a gRPC response body that ends, at a message boundary, with an
//! injected status in its trailers.
//!
//! gRPC frames each message as a 1-byte compression flag, a 4-byte big-endian length, then the payload; the
//! body is scanned for those boundaries as it streams (nothing is buffered beyond one frame).

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{HeaderMap, HeaderName};
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::{super::error::BodyError, ProxyBody};
use crate::{
    experiment::{AnyEnded, Held},
    fault::GrpcStream,
};

static GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
static GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");

/// Where the scan is in the message stream.
#[derive(Debug, Clone, Copy)]
enum Scan {
    /// Reading a message's 5-byte prefix; this many bytes of it seen.
    Prefix { seen: usize, len: [u8; 4] },
    /// Inside a payload; this many bytes left.
    Payload(u64),
}

pub struct GrpcCutBody {
    inner: ProxyBody,
    /// Each experiment's stream fault, while it runs.
    held: Held<GrpcStream>,
    /// Their combination; `None` once every one of them has ended (the stream then passes untouched).
    fault: Option<GrpcStream>,
    /// Resolves when one of the experiments ends.
    ended: AnyEnded,
    /// When the response began: the origin of `fault.after`.
    started: Instant,
    scan: Scan,
    messages: u64,
    /// Fires at `fault.after`.
    timer: Option<Pin<Box<Sleep>>>,
    /// The time is up: end at the next boundary.
    expired: bool,
    /// The injected trailers have been sent (or the stream is over).
    done: bool,
    /// A boundary was reached where the stream must end: the trailers go out next.
    stop: bool,
}

impl GrpcCutBody {
    pub fn new(inner: ProxyBody, held: Held<GrpcStream>) -> Self {
        let mut body = GrpcCutBody {
            inner,
            held,
            fault: None,
            ended: AnyEnded::never(),
            started: Instant::now(),
            scan: Scan::Prefix { seen: 0, len: [0; 4] },
            messages: 0,
            timer: None,
            expired: false,
            done: false,
            stop: false,
        };
        body.replan();
        body
    }

    /// Combines the stream faults of the experiments still running, and arms the timer for them.
    fn replan(&mut self) {
        self.held.prune();
        let mut live = self.held.live();
        self.fault = live.next().cloned().map(|mut first| {
            for g in live {
                first.combine(g);
            }
            first
        });
        let after = self.fault.as_ref().and_then(|f| f.after);
        self.timer = after.map(|d| Box::pin(tokio::time::sleep_until(self.started + d)));
        self.expired = false;
        // A stop was only ever due to the faults that are gone, or is due again under those left.
        self.stop = self.stop && self.due();
        self.ended = self.held.any_ended();
    }

    fn at_boundary(&self) -> bool {
        matches!(self.scan, Scan::Prefix { seen: 0, .. })
    }

    fn due(&self) -> bool {
        let Some(fault) = &self.fault else { return false };
        self.expired || fault.after_messages.is_some_and(|n| self.messages >= n)
    }

    fn trailers(&mut self) -> Frame<Bytes> {
        self.done = true;
        let mut t = HeaderMap::new();
        if let Some(fault) = &self.fault {
            t.insert(&GRPC_STATUS, fault.status.header_value());
            if let Some(m) = &fault.message {
                t.insert(&GRPC_MESSAGE, m.clone());
            }
        }
        Frame::trailers(t)
    }

    /// Scans `data`; returns how many of its bytes may pass (all, or up to the boundary where it must stop).
    fn scan(&mut self, data: &[u8]) -> usize {
        let mut pos = 0;
        while let Some(&byte) = data.get(pos) {
            match &mut self.scan {
                Scan::Prefix { seen, len } => {
                    if let Some(slot) = seen.checked_sub(1).and_then(|i| len.get_mut(i)) {
                        *slot = byte;
                    }
                    *seen += 1;
                    pos += 1;
                    if *seen == 5 {
                        let payload = u64::from(u32::from_be_bytes(*len));
                        self.scan = Scan::Payload(payload);
                        if payload == 0 && self.message_done() {
                            return pos;
                        }
                    }
                }
                Scan::Payload(left) => {
                    let take = (*left).min((data.len() - pos) as u64);
                    *left -= take;
                    // At most what is left of `data`: fits.
                    pos += usize::try_from(take).unwrap_or(data.len() - pos);
                    if *left == 0 && self.message_done() {
                        return pos;
                    }
                }
            }
        }
        pos
    }

    /// A message ended: back to reading a prefix. True when the stream must stop here.
    fn message_done(&mut self) -> bool {
        self.scan = Scan::Prefix { seen: 0, len: [0; 4] };
        self.messages += 1;
        if self.due() {
            self.stop = true;
        }
        self.stop
    }
}

impl Body for GrpcCutBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        while Pin::new(&mut this.ended).poll(cx).is_ready() {
            this.replan();
        }
        if let Some(timer) = &mut this.timer {
            if timer.as_mut().poll(cx).is_ready() {
                this.timer = None;
                this.expired = true;
            }
        }
        if this.stop || (this.at_boundary() && this.due()) {
            return Poll::Ready(Some(Ok(this.trailers())));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(mut data) => {
                    let pass = this.scan(&data);
                    data.truncate(pass);
                    Poll::Ready(Some(Ok(Frame::data(data))))
                }
                // The upstream's own trailers: the call ended before the fault.
                Err(frame) => {
                    this.done = true;
                    Poll::Ready(Some(Ok(frame)))
                }
            },
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{experiment::Lifeline, fault::GrpcCode};

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0];
        f.extend_from_slice(&u32::try_from(payload.len()).expect("a test payload fits a frame").to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn body(after: u64) -> GrpcCutBody {
        let mut held = Held::new();
        held.push(
            &Lifeline::default(),
            GrpcStream { after_messages: Some(after), after: None, status: GrpcCode::UNAVAILABLE, message: None },
        );
        GrpcCutBody::new(ProxyBody::empty(), held)
    }

    #[test]
    fn stops_at_the_boundary_of_the_nth_message_across_chunks() {
        let mut stream = Vec::new();
        for p in [&b"one"[..], b"", b"three", b"four"] {
            stream.extend(frame(p));
        }
        let end_of_third = frame(b"one").len() + frame(b"").len() + frame(b"three").len();
        // Every split of the stream into two chunks stops at the same byte.
        for split in 0..stream.len() {
            let mut b = body(3);
            let first = b.scan(&stream[..split]);
            let passed = if b.stop { first } else { first + b.scan(&stream[split..]) };
            assert_eq!(passed, end_of_third, "split at {split}");
            assert!(b.stop);
        }
    }

    #[test]
    fn a_stream_shorter_than_n_passes_whole() {
        let stream = [frame(b"a"), frame(b"b")].concat();
        let mut b = body(3);
        assert_eq!(b.scan(&stream), stream.len());
        assert!(!b.stop);
    }
}
