//! The response as faults shape it: rewrite, replace and corrupt, and the body faults (truncate,
//! throttle, reset, first_byte_delay, drip) on the upstream's body as it streams. A cut body returns
//! [`BodyError::Cut`]; hyper then closes the connection (HTTP/1.1) or resets the stream (HTTP/2).

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::Response;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::{
    super::{conn::ResetSwitch, error::BodyError},
    ProxyBody,
};
use crate::{
    experiment::{AnyEnded, Held},
    fault::{BodyPlan, Corruptor, CutKind, ResponsePlan},
};

// === response shaping ===

/// Applies the request's response plan to the upstream's response: rewrites status and headers, swaps in
/// a replacement body, then wraps the body for the body faults.
pub fn shape(
    resp: Response<ProxyBody>,
    plan: Held<BodyPlan>,
    response: &ResponsePlan,
    switch: &ResetSwitch,
) -> Response<ProxyBody> {
    let (mut parts, mut body) = resp.into_parts();
    for r in &response.rewrites {
        r.apply_response(&mut parts);
    }
    if let Some(replace) = &response.replace {
        // The upstream's body is dropped unread: its connection is not reused.
        body = ProxyBody::full(replace.body.clone());
        let h = &mut parts.headers;
        h.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(replace.body.len()));
        // The new bytes are neither encoded nor the upstream's representation.
        h.remove(http::header::CONTENT_ENCODING);
        h.remove(http::header::ETAG);
        h.remove(http::header::CONTENT_RANGE);
        if let Some(ct) = &replace.content_type {
            h.insert(http::header::CONTENT_TYPE, ct.clone());
        }
    }
    if plan.is_empty() && response.corrupt.is_empty() {
        return Response::from_parts(parts, body);
    }
    let length = body.size_hint().exact();
    let corrupt = response.corrupt.iter().map(|(c, seed)| c.start(*seed, length)).collect();
    let acted = ActBody::new(body, plan, switch.clone()).with_corruption(corrupt);
    Response::from_parts(parts, ProxyBody::Acted(Box::new(acted)))
}

// === impl ActBody ===

/// How long a cut body waits before ending the connection. hyper drops what it still buffers when a body
/// fails, so the cut first returns `Pending` for this long: hyper flushes the bytes before the cut to the
/// socket meanwhile, and the client receives them.
const DRAIN: Duration = Duration::from_millis(25);

/// Throttled bodies are sent in pieces of at most this long a time's worth of bytes.
const PIECE: Duration = Duration::from_millis(50);

/// The upstream's body with the request's body faults applied.
pub struct ActBody {
    inner: ProxyBody,
    /// Each experiment's body faults, while it runs.
    held: Held<BodyPlan>,
    /// Resolves when one of those experiments ends: the plan is made again without it.
    ended: AnyEnded,
    /// The combined plan of the experiments still running.
    plan: BodyPlan,
    switch: ResetSwitch,
    /// Body bytes passed on so far.
    sent: u64,
    /// When the first piece went out (the throttle's time origin).
    started: Option<Instant>,
    /// The throttle's wait before the next piece.
    sleep: Option<Pin<Box<Sleep>>>,
    /// Data received but not yet passed on (throttled pieces).
    pending: Bytes,
    /// Corruptions at work on the body, applied in order to every piece.
    corrupt: Vec<Corruptor>,
    /// When the last drip chunk went out.
    dripped: Option<Instant>,
    /// Whether the first body byte's wait (`BodyPlan::first_byte`) is over.
    first_byte_done: bool,
    /// When that wait ends, from the first time the body is asked for data.
    first_byte_due: Option<Instant>,
}

impl ActBody {
    pub fn new(inner: ProxyBody, held: Held<BodyPlan>, switch: ResetSwitch) -> Self {
        let plan = BodyPlan::combined(held.live());
        ActBody {
            inner,
            first_byte_done: plan.first_byte.is_zero(),
            ended: held.any_ended(),
            held,
            plan,
            switch,
            sent: 0,
            started: None,
            sleep: None,
            pending: Bytes::new(),
            corrupt: Vec::new(),
            dripped: None,
            first_byte_due: None,
        }
    }

    pub fn with_corruption(mut self, corrupt: Vec<Corruptor>) -> Self {
        self.corrupt = corrupt;
        self
    }

    /// One of the experiments ended: combine the plans of those left. A wait that only the ended
    /// experiments imposed is over at once; a cut that was theirs is gone.
    fn replan(&mut self) {
        self.held.prune();
        let plan = BodyPlan::combined(self.held.live());
        if plan.first_byte.is_zero() {
            self.first_byte_done = true;
        } else if let Some(due) = self.first_byte_due {
            // The first byte's wait, counted from the same start, now made of the remaining experiments'.
            self.first_byte_due = due.checked_sub(self.plan.first_byte).map(|start| start + plan.first_byte);
        }
        self.plan = plan;
        self.sleep = None;
        self.ended = self.held.any_ended();
    }

    /// How many more bytes may pass before the cut.
    fn room(&self) -> Option<u64> {
        self.plan.cut.map(|(n, _)| n.saturating_sub(self.sent))
    }

    fn cut(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let drain = self.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(DRAIN)));
        if drain.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        if let Some((_, CutKind::Reset)) = self.plan.cut {
            self.switch.turn_on();
        }
        Poll::Ready(Some(Err(BodyError::Cut)))
    }

    /// When the next piece may go: the first byte's wait, the throttle (the bytes already sent must have
    /// taken their time at the rate) and the drip's pause, whichever is latest. `None`: now.
    fn due(&mut self) -> Option<Instant> {
        if !self.first_byte_done {
            let wait = self.plan.first_byte;
            return Some(*self.first_byte_due.get_or_insert_with(|| Instant::now() + wait));
        }
        let throttle = match (self.started, self.plan.rate) {
            (Some(started), Some(rate)) => {
                Some(started + Duration::from_secs_f64(self.sent as f64 / rate.get() as f64))
            }
            _ => None,
        };
        let drip = self.plan.drip.and_then(|d| self.dripped.map(|at| at + d.interval));
        throttle.max(drip)
    }

    /// Waits until [`ActBody::due`].
    fn wait(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(due) = self.due() else { return Poll::Ready(()) };
        if due <= Instant::now() {
            self.end_first_byte_wait();
            self.sleep = None;
            return Poll::Ready(());
        }
        let sleep = self.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
        if sleep.deadline() != due {
            sleep.as_mut().reset(due);
        }
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.sleep = None;
                self.end_first_byte_wait();
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn end_first_byte_wait(&mut self) {
        self.first_byte_done = true;
    }

    /// Passes on up to `room` and the throttle's piece size of `data`, keeping the rest for later.
    fn pass(&mut self, mut data: Bytes) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let mut max = self.room().unwrap_or(u64::MAX);
        if let Some(rate) = self.plan.rate {
            // At most 50 ms worth of bytes: rate / 20, computed in integers.
            max = max.min((rate.get() / (1000 / u64::try_from(PIECE.as_millis()).unwrap_or(1000).max(1))).max(1));
        }
        if let Some(drip) = self.plan.drip {
            max = max.min(drip.chunk.get());
            self.dripped = Some(Instant::now());
        }
        let take = usize::try_from(max).unwrap_or(usize::MAX).min(data.len());
        self.pending = data.split_off(take);
        for c in &mut self.corrupt {
            data = c.apply(self.sent, data);
        }
        self.sent += data.len() as u64;
        self.started.get_or_insert_with(Instant::now);
        Poll::Ready(Some(Ok(Frame::data(data))))
    }
}

impl Body for ActBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        while Pin::new(&mut this.ended).poll(cx).is_ready() {
            this.replan();
        }
        if this.room() == Some(0) {
            return this.cut(cx);
        }
        if this.wait(cx).is_pending() {
            return Poll::Pending;
        }
        if !this.pending.is_empty() {
            let data = std::mem::take(&mut this.pending);
            return this.pass(data);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) if data.is_empty() => Poll::Ready(Some(Ok(Frame::data(data)))),
                Ok(data) => this.pass(data),
                // Trailers come after the whole body: the cut (if any) was not reached.
                Err(frame) => Poll::Ready(Some(Ok(frame))),
            },
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.pending.is_empty() && self.room() != Some(0) && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        // Keep the upstream's length: a cut body then ends short of its content-length, as a real cut does.
        self.inner.size_hint()
    }
}
