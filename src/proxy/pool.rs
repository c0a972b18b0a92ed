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
use tokio::net::TcpStream;

use super::{
    body::RequestBody,
    tls::{TlsOrigin, UpstreamIo},
    upstream::UpstreamError,
};

/// Idle HTTP/1.1 connections kept per route; more are closed when they fall idle.
const MAX_IDLE: usize = 1024;

pub struct Pool {
    /// `host:port` to connect to.
    addr: String,
    connect_timeout: Duration,
    /// `Some`: the upstream speaks HTTPS.
    tls: Option<Arc<TlsOrigin>>,
    idle: ArrayQueue<http1::SendRequest<RequestBody>>,
    h2: ArcSwapOption<http2::SendRequest<RequestBody>>,
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
        })
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
    /// meanwhile is sent again on another; any other failure is the request's.
    ///
    /// `keep`: whether the connection may serve later requests (not after an upgrade).
    pub async fn send_h1(
        self: &Arc<Self>,
        mut req: Request<RequestBody>,
        keep: bool,
    ) -> Result<Response<PooledBody>, UpstreamError> {
        loop {
            let (mut sender, reused) = match self.idle.pop() {
                Some(s) => (s, true),
                None => (self.connect_h1().await?, false),
            };
            if sender.ready().await.is_err() {
                if reused {
                    continue;
                }
                return Err(UpstreamError::Connect("the upstream closed the new connection".into()));
            }
            match sender.try_send_request(req).await {
                Ok(resp) => {
                    let (parts, body) = resp.into_parts();
                    let back = keep.then(|| ReturnTo { pool: Arc::clone(self), sender });
                    return Ok(Response::from_parts(parts, PooledBody::new(body, back)));
                }
                Err(mut e) => match e.take_message() {
                    Some(unsent) if reused => req = unsent,
                    _ => return Err(UpstreamError::of_send(e.into_error())),
                },
            }
        }
    }

    /// Sends a request on the route's HTTP/2 connection, opening it if there is none.
    pub async fn send_h2(&self, req: Request<RequestBody>) -> Result<Response<PooledBody>, UpstreamError> {
        let mut sender = self.h2_sender().await?;
        if sender.ready().await.is_err() {
            self.h2.store(None);
            sender = self.h2_sender().await?;
            sender.ready().await.map_err(|e| UpstreamError::Request(e.to_string()))?;
        }
        let resp = sender.send_request(req).await.map_err(UpstreamError::of_send)?;
        let (parts, body) = resp.into_parts();
        Ok(Response::from_parts(parts, PooledBody::new(body, None)))
    }

    async fn h2_sender(&self) -> Result<http2::SendRequest<RequestBody>, UpstreamError> {
        if let Some(s) = self.h2.load().as_deref().filter(|s| !s.is_closed()) {
            return Ok(s.clone());
        }
        let _one = self.h2_connecting.lock().await;
        if let Some(s) = self.h2.load().as_deref().filter(|s| !s.is_closed()) {
            return Ok(s.clone());
        }
        let io = self.connect(true).await?;
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
            let _ = self.pool.idle.push(self.sender);
        }
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
