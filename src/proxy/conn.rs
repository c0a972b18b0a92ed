//! One client connection's life on an HTTP listener: what it is doing (reading a request head, serving
//! requests, idle), the timeouts that close it when it does nothing, and its drain at shutdown.
//!
//! - A request head must arrive whole within `header_read_timeout`, counted from the connection's start
//!   for its first request and from the first byte of each later one (a slowloris client, or a socket
//!   that never sends anything, is closed).
//! - A connection with no request in progress is closed after `idle_timeout`: an HTTP/1.1 keep-alive
//!   connection between requests, an HTTP/2 connection with no open stream (with a GOAWAY). The time
//!   between requests is not a head's: client pools that keep connections for a minute or more (nginx,
//!   Go, browsers) keep them.
//! - A request in progress is never timed out here: its response may legitimately take long (a delay, a
//!   slow upstream, a long download), and its own timeouts (the route's, the faults') bound it.
//!
//! - An HTTP/2 client that floods control frames (PING, SETTINGS, PRIORITY, RST_STREAM: the frames a
//!   server answers or works on without a request to show for it) beyond [`FloodBudget`] is closed; a
//!   normal client sends a handful a minute.
//!
//! The connection's socket is wrapped in [`Watched`], which notes the first byte of each head; its
//! service marks each request in progress with an [`InFlight`] guard, carried by the response body until
//! the body is done. Nothing here polls: the connection's task sleeps until the next deadline, looks
//! again, and sleeps on if the connection moved on meanwhile.
//!
//! A fault that resets the connection flips its [`ResetSwitch`] (shared by the connection and its
//! requests); [`ResetOnDrop`] then sets `SO_LINGER` to zero when hyper drops the socket, so the kernel
//! sends RST instead of FIN.

use std::{
    io,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
        Arc,
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    time::Instant,
};

/// The timeouts of a listener's client connections.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// A request head must be read whole within this long of its first byte (of the connection's start,
    /// for the first request).
    pub header_read: Duration,
    /// A connection with no request in progress is closed after this long.
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts { header_read: Duration::from_secs(10), idle: Duration::from_secs(120) }
    }
}

/// Why a connection was closed by a timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// A request head (or the first request) did not arrive in time.
    Head,
    /// No request for `idle_timeout` on an HTTP/1 connection: closed.
    Idle,
    /// No stream for `idle_timeout` on an HTTP/2 connection: a GOAWAY, then closed.
    IdleH2,
}

impl Expiry {
    pub fn as_str(self) -> &'static str {
        match self {
            Expiry::Head => "header_read",
            Expiry::Idle | Expiry::IdleH2 => "idle",
        }
    }
}

/// What one connection is doing, shared by its socket wrapper, its service and its task. Times are
/// milliseconds since the connection's start, plus one (0: not set).
#[derive(Debug)]
pub struct Activity {
    start: Instant,
    /// Requests in progress (from the service's call to the end of the response body).
    in_flight: AtomicU32,
    /// When the head being read began (its first byte, or the connection's start); 0: no head is being read.
    head_since: AtomicU64,
    /// When the last request ended (or the connection started).
    idle_since: AtomicU64,
    /// The client spoke HTTP/2 (its preface was the first thing read).
    h2: AtomicBool,
    /// Whether anything was read yet.
    read_any: AtomicBool,
    /// The client went beyond the control-frame budget and its connection was closed.
    flooded: AtomicBool,
}

/// The HTTP/2 client preface's first bytes.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Activity {
            start: Instant::now(),
            in_flight: AtomicU32::new(0),
            head_since: AtomicU64::new(1),
            idle_since: AtomicU64::new(1),
            h2: AtomicBool::new(false),
            read_any: AtomicBool::new(false),
            flooded: AtomicBool::new(false),
        })
    }

    /// Whether the connection was closed for flooding control frames.
    pub fn flooded(&self) -> bool {
        self.flooded.load(Ordering::Relaxed)
    }

    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1
    }

    fn at(&self, ms: u64) -> Instant {
        self.start + Duration::from_millis(ms.saturating_sub(1))
    }

    /// Bytes came in.
    fn read(&self, bytes: &[u8]) {
        // The first read may hold only part of the preface; no HTTP/1 request starts like it (PRI is not a
        // method).
        let n = bytes.len().min(H2_PREFACE.len());
        if !self.read_any.swap(true, Ordering::Relaxed) && bytes.get(..n) == H2_PREFACE.get(..n) {
            // HTTP/2: heads come in frames of a connection that stays up; only idle time counts.
            self.h2.store(true, Ordering::Relaxed);
            self.head_since.store(0, Ordering::Relaxed);
            return;
        }
        if self.in_flight.load(Ordering::Relaxed) == 0
            && !self.h2.load(Ordering::Relaxed)
            && self.head_since.load(Ordering::Relaxed) == 0
        {
            self.head_since.store(self.now(), Ordering::Relaxed);
        }
    }

    /// A request's head is in and its service is called: it is in progress until the guard drops.
    pub fn request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_since.store(0, Ordering::Relaxed);
        InFlight(Some(Arc::clone(self)))
    }

    /// When the connection's next timeout is due, and which, as things stand.
    fn deadline(&self, t: &Timeouts) -> (Instant, Option<Expiry>) {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            // Look again later; a request in progress is not timed out here.
            return (Instant::now() + t.idle, None);
        }
        if self.h2.load(Ordering::Relaxed) {
            return (self.at(self.idle_since.load(Ordering::Relaxed)) + t.idle, Some(Expiry::IdleH2));
        }
        match self.head_since.load(Ordering::Relaxed) {
            0 => (self.at(self.idle_since.load(Ordering::Relaxed)) + t.idle, Some(Expiry::Idle)),
            since => (self.at(since) + t.header_read, Some(Expiry::Head)),
        }
    }

    /// The timeout due at `now`, if any.
    pub fn expired(&self, t: &Timeouts, now: Instant) -> Option<Expiry> {
        match self.deadline(t) {
            (at, Some(e)) if at <= now => Some(e),
            _ => None,
        }
    }

    /// When to look again.
    pub fn next_look(&self, t: &Timeouts) -> Instant {
        self.deadline(t).0
    }
}

/// Marks a request in progress on its connection; dropped when its response body is done (or dropped).
#[derive(Debug)]
pub struct InFlight(Option<Arc<Activity>>);

impl InFlight {
    /// A guard that marks nothing (responses made without a connection's service).
    pub fn none() -> Self {
        InFlight(None)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(a) = &self.0 {
            a.idle_since.store(a.now(), Ordering::Relaxed);
            a.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// A response body that keeps its request in progress until it is done.
pub struct Tracked<B> {
    inner: B,
    guard: Option<InFlight>,
}

impl<B: Body> Tracked<B> {
    pub fn new(inner: B, guard: InFlight) -> Self {
        let guard = (!inner.is_end_stream()).then_some(guard);
        Tracked { inner, guard }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Tracked<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) || self.inner.is_end_stream() {
            self.guard = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A client connection's socket, noting what it reads in the connection's [`Activity`], and on HTTP/2
/// counting the client's control frames against a [`FloodBudget`].
pub struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
    /// Set once the client's preface shows HTTP/2.
    frames: Option<Frames>,
}

impl<S> Watched<S> {
    pub fn new(inner: S, activity: Arc<Activity>) -> Self {
        Watched { inner, activity, frames: None }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let (Poll::Ready(Ok(())), Some(new)) = (&polled, buf.filled().get(before..)) {
            if !new.is_empty() {
                this.activity.read(new);
                if this.frames.is_none() && this.activity.h2.load(Ordering::Relaxed) {
                    this.frames = Some(Frames::new(FloodBudget::DEFAULT));
                }
                if let Some(frames) = &mut this.frames {
                    if frames.scan(new, Instant::now()).is_err() {
                        this.activity.flooded.store(true, Ordering::Relaxed);
                        return Poll::Ready(Err(io::Error::other("HTTP/2 control frame flood")));
                    }
                }
            }
        }
        polled
    }
}

/// How many HTTP/2 control frames (PING and SETTINGS that are not acknowledgements, PRIORITY, RST_STREAM)
/// a client may send: a burst, and a rate refilling it. Within it sit gRPC keep-alive pings (one every
/// few seconds at most), browsers' SETTINGS, and clients cancelling streams; a PING, SETTINGS or reset
/// flood (CVE-2019-9512, -9515, -2023-44487) does not, and costs every other client of the worker.
#[derive(Debug, Clone, Copy)]
pub struct FloodBudget {
    pub burst: u32,
    pub per_second: u32,
}

impl FloodBudget {
    pub const DEFAULT: FloodBudget = FloodBudget { burst: 2_000, per_second: 200 };
}

/// The client's control frames exceeded the budget.
#[derive(Debug, PartialEq, Eq)]
pub struct Flood;

/// Follows an HTTP/2 client's byte stream frame by frame (headers only; payloads are skipped) and keeps
/// a token bucket of control frames.
struct Frames {
    /// Preface bytes still to skip.
    preface: usize,
    /// The frame header being read, and how much of it is in.
    header: [u8; 9],
    have: usize,
    /// Payload bytes of the current frame still to skip.
    payload: usize,
    budget: FloodBudget,
    tokens: u32,
    refilled: Instant,
}

/// The client connection preface's length (RFC 9113 §3.4).
const PREFACE_LEN: usize = 24;

impl Frames {
    fn new(budget: FloodBudget) -> Self {
        Frames {
            preface: PREFACE_LEN,
            header: [0; 9],
            have: 0,
            payload: 0,
            budget,
            tokens: budget.burst,
            refilled: Instant::now(),
        }
    }

    fn scan(&mut self, mut bytes: &[u8], now: Instant) -> Result<(), Flood> {
        let skip = self.preface.min(bytes.len());
        self.preface -= skip;
        bytes = bytes.get(skip..).unwrap_or_default();
        while !bytes.is_empty() {
            if self.payload > 0 {
                let n = self.payload.min(bytes.len());
                self.payload -= n;
                bytes = bytes.get(n..).unwrap_or_default();
                continue;
            }
            let n = (self.header.len() - self.have).min(bytes.len());
            if let (Some(to), Some(from)) = (self.header.get_mut(self.have..self.have + n), bytes.get(..n)) {
                to.copy_from_slice(from);
            }
            self.have += n;
            bytes = bytes.get(n..).unwrap_or_default();
            if self.have < self.header.len() {
                break;
            }
            self.have = 0;
            let [l0, l1, l2, kind, flags, ..] = self.header;
            self.payload = usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2);
            const PRIORITY: u8 = 0x2;
            const RST_STREAM: u8 = 0x3;
            const SETTINGS: u8 = 0x4;
            const PING: u8 = 0x6;
            const ACK: u8 = 0x1;
            let control = match kind {
                PRIORITY | RST_STREAM => true,
                SETTINGS | PING => flags & ACK == 0,
                _ => false,
            };
            if control {
                self.spend(now)?;
            }
        }
        Ok(())
    }

    fn spend(&mut self, now: Instant) -> Result<(), Flood> {
        if self.tokens == 0 {
            let elapsed = now.saturating_duration_since(self.refilled);
            let earned = elapsed.as_millis().saturating_mul(u128::from(self.budget.per_second)) / 1000;
            if earned == 0 {
                return Err(Flood);
            }
            self.tokens = u32::try_from(earned).unwrap_or(u32::MAX).min(self.budget.burst);
            self.refilled = now;
        }
        self.tokens -= 1;
        Ok(())
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

// === impl ResetSwitch ===

/// Shared by one client connection and its requests: once on, the connection ends with a TCP reset.
#[derive(Debug, Clone, Default)]
pub struct ResetSwitch(Arc<AtomicBool>);

impl ResetSwitch {
    pub fn turn_on(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn is_on(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

// === impl ResetOnDrop ===

/// The client's socket; when dropped with its switch on, it is closed with RST rather than FIN.
pub struct ResetOnDrop {
    stream: TcpStream,
    switch: ResetSwitch,
}

impl ResetOnDrop {
    pub fn new(stream: TcpStream, switch: ResetSwitch) -> Self {
        ResetOnDrop { stream, switch }
    }

    /// Waits for data from the peer without taking it; `Ok(0)` once the peer closed.
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.peek(buf).await
    }
}

impl Drop for ResetOnDrop {
    fn drop(&mut self) {
        if self.switch.is_on() {
            // Zero linger: close() discards unsent data and sends RST. Does not block.
            if let Err(e) = self.stream.set_zero_linger() {
                tracing::debug!(error = %e, "could not arm the connection reset");
            }
        }
    }
}

impl AsyncRead for ResetOnDrop {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResetOnDrop {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn heads_idle_time_and_requests_have_their_own_clocks() {
        let t = Timeouts { header_read: Duration::from_secs(10), idle: Duration::from_secs(120) };
        let a = Activity::new();
        // A silent new connection: the first head's clock runs from the start.
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(a.expired(&t, Instant::now()), Some(Expiry::Head));
        // A request in progress is never timed out.
        let guard = a.request();
        tokio::time::advance(Duration::from_secs(600)).await;
        assert_eq!(a.expired(&t, Instant::now()), None);
        drop(guard);
        // Between requests: the idle clock, not the head's.
        tokio::time::advance(Duration::from_secs(119)).await;
        assert_eq!(a.expired(&t, Instant::now()), None);
        a.read(b"GET / HTT");
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(a.expired(&t, Instant::now()), None);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(a.expired(&t, Instant::now()), Some(Expiry::Head), "a head begun must end in time");
    }

    #[tokio::test(start_paused = true)]
    async fn http2_connections_only_time_out_idle() {
        let t = Timeouts::default();
        let a = Activity::new();
        a.read(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        tokio::time::advance(Duration::from_secs(60)).await;
        a.read(b"ping frame");
        assert_eq!(a.expired(&t, Instant::now()), None);
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(a.expired(&t, Instant::now()), Some(Expiry::IdleH2), "pings do not keep it open");
    }

    fn frame(kind: u8, flags: u8, payload: usize) -> Vec<u8> {
        let len = u32::try_from(payload).unwrap_or(0).to_be_bytes();
        let mut f = vec![len[1], len[2], len[3], kind, flags, 0, 0, 0, 1];
        f.resize(9 + payload, 0xab);
        f
    }

    #[tokio::test(start_paused = true)]
    async fn control_frame_floods_are_stopped_and_normal_clients_are_not() {
        let budget = FloodBudget { burst: 10, per_second: 5 };
        let mut f = Frames::new(budget);
        let now = Instant::now();
        // The preface, SETTINGS, and a big DATA frame whose payload bytes look like frame headers: only
        // headers are read.
        let mut stream = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        stream.extend(frame(0x4, 0, 12));
        stream.extend(frame(0x0, 0, 4000).into_iter().map(|b| if b == 0xab { 0x06 } else { b }));
        // Acknowledgements are free.
        for _ in 0..50 {
            stream.extend(frame(0x6, 0x1, 8));
            stream.extend(frame(0x4, 0x1, 0));
        }
        // Fed one byte at a time, as a slow socket would hand them over.
        for b in &stream {
            assert_eq!(f.scan(std::slice::from_ref(b), now), Ok(()));
        }
        // Nine more control frames fit the burst of ten (SETTINGS took one) …
        let pings: Vec<u8> = (0..9).flat_map(|_| frame(0x6, 0, 8)).collect();
        assert_eq!(f.scan(&pings, now), Ok(()));
        // … the next does not, until the rate has refilled the bucket.
        assert_eq!(f.scan(&frame(0x3, 0, 4), now), Err(Flood));
        // Once the burst is spent, the rate: five a second go on, the sixth is a flood.
        let mut r = Frames::new(budget);
        r.preface = 0;
        let ten: Vec<u8> = (0..10).flat_map(|_| frame(0x6, 0, 8)).collect();
        assert_eq!(r.scan(&ten, now), Ok(()));
        tokio::time::advance(Duration::from_secs(1)).await;
        let later = Instant::now();
        let five: Vec<u8> = (0..5).flat_map(|_| frame(0x2, 0, 5)).collect();
        assert_eq!(r.scan(&five, later), Ok(()), "five a second go on");
        assert_eq!(r.scan(&frame(0x6, 0, 8), later), Err(Flood));
        // HEADERS, DATA, WINDOW_UPDATE and the rest never count.
        let mut g = Frames::new(budget);
        let work: Vec<u8> =
            (0..1000).flat_map(|_| [frame(0x1, 0x4, 20), frame(0x0, 0x1, 10), frame(0x8, 0, 4)].concat()).collect();
        assert_eq!(g.scan(&work, now), Ok(()));
    }
}
