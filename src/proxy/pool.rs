//! Upstream connections of one route, kept open and reused.
//!
//! HTTP/1.1: idle connections wait in a lock-free queue; a request takes one (or opens one), and its
//! response body hands the connection back when it ends. HTTP/2: one connection, shared by every request
//! (multiplexed), replaced when it closes. A route owns its pool, so finding it costs nothing: no key to
//! hash, no lock shared across the process on the request path.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use crossbeam_queue::ArrayQueue;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::{
    body::Incoming,
    client::conn::{http1, http2},
};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::{net::TcpStream, time::Instant};

use crate::telemetry::metrics::RetryCounters;

use super::{
    body::request::RequestBody,
    error::UpstreamError,
    tls::{TlsOrigin, UpstreamIo},
};

/// Idle HTTP/1.1 connections kept per route; more are closed when they fall idle.
const MAX_IDLE: usize = 1024;

pub struct Pool {
    /// `host:port` to connect to.
    addr: String,
    connect_timeout: Duration,
    /// `Some`: the upstream speaks HTTPS.
    tls: Option<Arc<TlsOrigin>>,
    /// Idle HTTP/1.1 connections, each with when it went idle.
    idle: ArrayQueue<(http1::SendRequest<RequestBody>, Instant)>,
    h2: ArcSwapOption<http2::SendRequest<RequestBody>>,
    /// Whether the upstream speaks HTTP/2 (cleartext prior knowledge, or `h2` by ALPN), as last probed.
    h2_support: std::sync::Mutex<Option<(bool, Instant)>>,
    /// Requests sent again after the upstream refused them unprocessed or closed the connection first.
    retries: Option<RetryCounters>,
    /// Serialises opening the HTTP/2 connection, so a burst opens one, not many.
    h2_connecting: tokio::sync::Mutex<()>,
}

impl Pool {
    pub fn new(addr: String, connect_timeout: Duration, tls: Option<Arc<TlsOrigin>>) -> Arc<Self> {
        Arc::new(Pool {
            addr,
            connect_timeout,
            tls,
            idle: ArrayQueue::new(MAX_IDLE),
            h2: ArcSwapOption::empty(),
            h2_connecting: tokio::sync::Mutex::new(()),
            h2_support: std::sync::Mutex::new(None),
            retries: None,
        })
    }

    /// Counts the pool's second attempts in these counters.
    pub fn with_retries(mut self: Arc<Self>, retries: RetryCounters) -> Arc<Self> {
        if let Some(p) = Arc::get_mut(&mut self) {
            p.retries = Some(retries);
        }
        self
    }

    fn count_retry(&self, why: Retry) {
        if let Some(r) = &self.retries {
            r.count(why.as_str());
        }
    }

    /// Whether the upstream speaks HTTP/2: asked once (an HTTP/2 preface and SETTINGS frame over a new
    /// connection, or ALPN over TLS), then remembered; a "no" is asked again after [`REPROBE`], and a
    /// "yes" whenever an HTTP/2 connection could not be opened.
    pub async fn speaks_h2(&self) -> bool {
        if let Some((yes, at)) = *self.h2_support.lock().unwrap_or_else(|e| e.into_inner()) {
            if yes || at.elapsed() < REPROBE {
                return yes;
            }
        }
        let yes = self.probe_h2().await;
        *self.h2_support.lock().unwrap_or_else(|e| e.into_inner()) = Some((yes, Instant::now()));
        if !yes {
            tracing::info!(upstream = %self.addr, "the upstream does not speak HTTP/2: HTTP/2 clients are forwarded over HTTP/1.1 (protocol: auto)");
        }
        yes
    }

    /// What an HTTP/2 server answers first to a client's preface is a SETTINGS frame; an HTTP/1.1 server
    /// answers 400 or closes.
    async fn probe_h2(&self) -> bool {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let probe = async {
            let stream = TcpStream::connect(&self.addr).await.ok()?;
            if let Some(tls) = &self.tls {
                let tls = tls.connect(stream, true).await.ok()?;
                return Some(tls.get_ref().1.alpn_protocol() == Some(b"h2"));
            }
            let mut stream = stream;
            // The preface, then an empty SETTINGS frame (length 0, type 4, no flags, stream 0).
            stream.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0").await.ok()?;
            let mut head = [0u8; 9];
            stream.read_exact(&mut head).await.ok()?;
            Some(head.get(3) == Some(&0x04))
        };
        matches!(tokio::time::timeout(self.connect_timeout, probe).await, Ok(Some(true)))
    }

    /// Forgets that the upstream spoke HTTP/2 (its HTTP/2 connection failed to open).
    fn h2_failed(&self) {
        *self.h2_support.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// A new connection; over TLS when the upstream is HTTPS, offering `h2` or HTTP/1.1 by ALPN. The TLS
    /// handshake counts towards the connect timeout.
    async fn connect(&self, h2: bool) -> Result<TokioIo<UpstreamIo>, UpstreamError> {
        match tokio::time::timeout(self.connect_timeout, self.connect_within(h2)).await {
            Err(_) => Err(UpstreamError::ConnectTimeout),
            Ok(r) => r,
        }
    }

    async fn connect_within(&self, h2: bool) -> Result<TokioIo<UpstreamIo>, UpstreamError> {
        let stream = match TcpStream::connect(&self.addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return Err(UpstreamError::ConnectTimeout),
            Err(e) => return Err(UpstreamError::Connect(e.to_string())),
            Ok(s) => s,
        };
        let _ = stream.set_nodelay(true);
        let io = match &self.tls {
            None => UpstreamIo::Plain(stream),
            Some(tls) => {
                UpstreamIo::Tls(Box::new(tls.connect(stream, h2).await.map_err(|e| UpstreamError::Tls(e.to_string()))?))
            }
        };
        Ok(TokioIo::new(io))
    }

    async fn connect_h1(&self) -> Result<http1::SendRequest<RequestBody>, UpstreamError> {
        let io = self.connect(false).await?;
        let (sender, conn) =
            http1::handshake(io).await.map_err(|e| UpstreamError::Connect(format!("HTTP/1.1 handshake: {e}")))?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }

    /// Sends an HTTP/1.1 request. A request that never left on an idle connection the upstream had closed
    /// meanwhile is sent again on another; so is an idempotent request without a body whose reused
    /// connection the upstream closed before answering (RFC 9110 §9.2.2: it may have been received, and
    /// receiving it twice does no harm). Any other failure is the request's.
    ///
    /// `keep`: whether the connection may serve later requests (not after an upgrade).
    pub async fn send_h1(
        self: &Arc<Self>,
        req: Request<Incoming>,
        keep: bool,
    ) -> Result<Response<PooledBody>, UpstreamError> {
        let replayable = keep && req.body().is_end_stream() && idempotent(req.method());
        let (parts, body) = req.into_parts();
        let mut head = None;
        let mut req = Request::from_parts(parts, RequestBody::new(body));
        let mut replays = 0;
        loop {
            let (mut sender, reused) = match self.idle.pop() {
                Some((s, _)) => (s, true),
                None => (self.connect_h1().await?, false),
            };
            if sender.ready().await.is_err() {
                if reused {
                    continue;
                }
                return Err(UpstreamError::Connect("the upstream closed the new connection".into()));
            }
            // What a second attempt needs, kept only when there may be one.
            if reused && replayable && head.is_none() {
                head = Some(Head::of(&req));
            }
            match sender.try_send_request(req).await {
                Ok(resp) => {
                    let (parts, body) = resp.into_parts();
                    let back = keep.then(|| ReturnTo { pool: Arc::clone(self), sender });
                    return Ok(Response::from_parts(parts, PooledBody::new(body, back)));
                }
                Err(mut e) => match (e.take_message(), &head) {
                    (Some(unsent), _) if reused => req = unsent,
                    (None, Some(h)) if reused && replays < MAX_REPLAYS && closed_before_answer(e.error()) => {
                        replays += 1;
                        self.count_retry(Retry::Closed);
                        tracing::debug!(upstream = %self.addr, "the upstream closed a reused connection before answering; sending the request again");
                        req = h.request(RequestBody::empty());
                    }
                    _ => return Err(UpstreamError::of_send(e.into_error())),
                },
            }
        }
    }

    /// Sends a request on the route's HTTP/2 connection, opening it if there is none. A request the
    /// upstream refused unprocessed — a stream above a GOAWAY's last stream id, `REFUSED_STREAM`, or a
    /// connection that closed before the request left — is sent again on a new connection (at most
    /// [`MAX_REPLAYS`] times), with its body if it was small enough to keep
    /// ([`crate::proxy::body::TAPE_MAX`]).
    pub async fn send_h2(&self, req: Request<Incoming>) -> Result<Response<PooledBody>, UpstreamError> {
        let (parts, body) = req.into_parts();
        let head = Head::of_parts(&parts);
        let (body, mut tape) = if body.is_end_stream() {
            (RequestBody::new(body), None)
        } else {
            let (b, t) = RequestBody::taped(body);
            (b, Some(t))
        };
        let mut req = Request::from_parts(parts, body);
        let mut replays = 0;
        loop {
            let mut sender = self.h2_sender().await?;
            if sender.ready().await.is_err() {
                self.h2.store(None);
                sender = self.h2_sender().await?;
                sender.ready().await.map_err(|e| UpstreamError::Request(e.to_string()))?;
            }
            let error = match sender.try_send_request(req).await {
                Ok(resp) => {
                    let (parts, body) = resp.into_parts();
                    return Ok(Response::from_parts(parts, PooledBody::new(body, None)));
                }
                Err(mut e) => match e.take_message() {
                    Some(unsent) if replays < MAX_REPLAYS => {
                        replays += 1;
                        self.count_retry(Retry::Unsent);
                        self.h2.store(None);
                        req = unsent;
                        continue;
                    }
                    _ => e.into_error(),
                },
            };
            let Some(why) = refused_unprocessed(&error).filter(|_| replays < MAX_REPLAYS) else {
                return Err(UpstreamError::of_send(error));
            };
            let body = match &tape {
                None => Some(RequestBody::empty()),
                Some(t) => t.again(),
            };
            let Some(body) = body else {
                tracing::debug!(upstream = %self.addr, "the upstream refused a request whose body was too large to keep; not sent again");
                return Err(UpstreamError::of_send(error));
            };
            replays += 1;
            self.count_retry(why);
            tracing::debug!(upstream = %self.addr, reason = why.as_str(), "the upstream refused a request unprocessed; sending it again on a new connection");
            // This connection is going away: the next request opens a new one.
            self.h2.store(None);
            tape = body.tape().cloned();
            req = head.request(body);
        }
    }

    async fn h2_sender(&self) -> Result<http2::SendRequest<RequestBody>, UpstreamError> {
        if let Some(s) = self.h2.load().as_deref().filter(|s| !s.is_closed()) {
            return Ok(s.clone());
        }
        let _one = self.h2_connecting.lock().await;
        if let Some(s) = self.h2.load().as_deref().filter(|s| !s.is_closed()) {
            return Ok(s.clone());
        }
        let io = match self.connect(true).await {
            Ok(io) => io,
            Err(e) => {
                self.h2_failed();
                return Err(e);
            }
        };
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(Duration::from_secs(30))
            .handshake(io)
            .await
            .map_err(|e| UpstreamError::Connect(format!("HTTP/2 handshake: {e}")))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream HTTP/2 connection ended with an error");
            }
        });
        self.h2.store(Some(Arc::new(sender.clone())));
        Ok(sender)
    }
}

/// Where an HTTP/1.1 connection goes back once its response is read.
pub struct ReturnTo {
    pool: Arc<Pool>,
    sender: http1::SendRequest<RequestBody>,
}

impl ReturnTo {
    fn give_back(self) {
        if !self.sender.is_closed() {
            // A full queue closes the connection: enough are idle already.
            let _ = self.pool.idle.push((self.sender, Instant::now()));
        }
    }
}

/// At most this many second attempts per request.
pub const MAX_REPLAYS: usize = 2;

/// How long an upstream that does not speak HTTP/2 is believed before it is asked again.
const REPROBE: Duration = Duration::from_secs(300);

/// Why a request was sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// A stream above a GOAWAY's last stream id: never processed.
    GoAway,
    /// `REFUSED_STREAM`: never processed.
    Refused,
    /// The connection closed before the request left.
    Unsent,
    /// An idempotent request without a body on a reused HTTP/1.1 connection the upstream closed first.
    Closed,
}

impl Retry {
    fn as_str(self) -> &'static str {
        match self {
            Retry::GoAway => "goaway",
            Retry::Refused => "refused_stream",
            Retry::Unsent => "unsent",
            Retry::Closed => "closed",
        }
    }
}

/// Whether an HTTP/2 request failed before the upstream processed it (RFC 9113 §8.7), so that sending it
/// again is safe: a stream the upstream's GOAWAY left out, a stream it refused, or a dispatch cancelled
/// because the connection ended before the request was written.
fn refused_unprocessed(e: &hyper::Error) -> Option<Retry> {
    if e.is_canceled() {
        return Some(Retry::Unsent);
    }
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(err) = cur {
        if let Some(h2) = err.downcast_ref::<h2::Error>() {
            if h2.is_go_away() && h2.is_remote() {
                return Some(Retry::GoAway);
            }
            if h2.reason() == Some(h2::Reason::REFUSED_STREAM) {
                return Some(Retry::Refused);
            }
            return None;
        }
        cur = err.source();
    }
    None
}

/// Whether an HTTP/1.1 exchange failed because the upstream closed (or reset) the connection before any
/// of its answer came.
fn closed_before_answer(e: &hyper::Error) -> bool {
    if e.is_incomplete_message() {
        return true;
    }
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            return matches!(io.kind(), K::ConnectionReset | K::BrokenPipe | K::ConnectionAborted | K::UnexpectedEof);
        }
        cur = err.source();
    }
    false
}

/// RFC 9110 §9.2.2: sending these twice has the effect of sending them once.
fn idempotent(m: &http::Method) -> bool {
    matches!(
        *m,
        http::Method::GET
            | http::Method::HEAD
            | http::Method::OPTIONS
            | http::Method::TRACE
            | http::Method::PUT
            | http::Method::DELETE
    )
}

/// A request's head, kept to send it again.
struct Head {
    method: http::Method,
    uri: http::Uri,
    version: http::Version,
    headers: http::HeaderMap,
}

impl Head {
    fn of<B>(req: &Request<B>) -> Self {
        Head {
            method: req.method().clone(),
            uri: req.uri().clone(),
            version: req.version(),
            headers: req.headers().clone(),
        }
    }

    fn of_parts(p: &http::request::Parts) -> Self {
        Head { method: p.method.clone(), uri: p.uri.clone(), version: p.version, headers: p.headers.clone() }
    }

    fn request(&self, body: RequestBody) -> Request<RequestBody> {
        let mut r = Request::new(body);
        *r.method_mut() = self.method.clone();
        *r.uri_mut() = self.uri.clone();
        *r.version_mut() = self.version;
        *r.headers_mut() = self.headers.clone();
        r
    }
}

/// An upstream response body that returns its connection to the pool when it has been read to the end.
/// Dropped before the end, the connection closes with it (it is mid-message).
pub struct PooledBody {
    body: Incoming,
    back: Option<ReturnTo>,
}

impl PooledBody {
    fn new(body: Incoming, back: Option<ReturnTo>) -> Self {
        let mut b = PooledBody { body, back };
        // An empty body (204, 304, HEAD, content-length 0) is never polled: the connection is free now.
        if b.body.is_end_stream() {
            if let Some(r) = b.back.take() {
                r.give_back();
            }
        }
        b
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        if matches!(polled, Poll::Ready(None))
            || (matches!(polled, Poll::Ready(Some(Ok(_)))) && this.body.is_end_stream())
        {
            if let Some(r) = this.back.take() {
                r.give_back();
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
