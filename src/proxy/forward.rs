//! The forward (egress) listener: absolute-form requests go to their own destination, `CONNECT` opens a
//! TCP tunnel to it. Tunnels take connection-level faults: refused (the CONNECT answered with a status),
//! delayed, held, reset or closed after some bytes, throttled, or blackholed.

use std::{
    num::NonZeroU64,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use http::{Method, Request, Response, StatusCode};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
    sync::{watch, Notify},
    time::Instant,
};

use super::{
    body::ProxyBody,
    conn::ResetSwitch,
    error::{Dropped, UpstreamError},
    websocket::{self, Frames},
};
use crate::{
    experiment::{Held, Lifeline},
    fault::{Blackhole, BodyPlan, CutKind, Disconnect},
};

/// Where a forward listener's request goes.
pub struct Destination<'a> {
    pub host: &'a str,
    pub port: u16,
    /// A CONNECT has none (""), so no route with a path prefix takes it.
    pub path: &'a str,
}

/// Why a request on a forward listener cannot be proxied (answered 400 with this text).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("{0}")]
pub struct NotProxied(pub &'static str);

/// The destination of an absolute `http://` request or of a CONNECT to `host:port`.
pub fn destination<B>(req: &Request<B>) -> Result<Destination<'_>, NotProxied> {
    let uri = req.uri();
    let Some(authority) = uri.authority() else {
        return Err(NotProxied(
            "this listener is a forward proxy: send absolute-form requests (http://host/path) or CONNECT \
             host:port, as clients do with HTTP_PROXY/HTTPS_PROXY set to it",
        ));
    };
    let host = authority.host();
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if req.method() == Method::CONNECT {
        return match authority.port_u16() {
            Some(port) if port > 0 => Ok(Destination { host, port, path: "" }),
            _ => Err(NotProxied("CONNECT needs host:port")),
        };
    }
    match uri.scheme_str() {
        Some("http") => Ok(Destination { host, port: authority.port_u16().unwrap_or(80), path: uri.path() }),
        Some("https") => Err(NotProxied(
            "an https:// URI goes through a CONNECT tunnel; this proxy does not originate TLS for absolute-form \
             requests",
        )),
        _ => Err(NotProxied("only http:// URIs and CONNECT are proxied")),
    }
}

/// Opens the TCP connection a CONNECT asks for.
pub async fn connect(authority: &str, timeout: Duration) -> Result<TcpStream, UpstreamError> {
    match tokio::time::timeout(timeout, TcpStream::connect(authority)).await {
        Err(_) => Err(UpstreamError::ConnectTimeout),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::TimedOut => Err(UpstreamError::ConnectTimeout),
        Ok(Err(e)) => Err(UpstreamError::Connect(e.to_string())),
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(s)
        }
    }
}

/// The answer to a CONNECT that opened: 200, then the tunnel.
pub fn established() -> Response<ProxyBody> {
    Response::new(ProxyBody::empty())
}

/// What happens to a tunnel (CONNECT) or an upgraded connection (WebSocket) while it runs; each
/// experiment's part of it lasts while the experiment runs.
#[derive(Debug, Clone, Default)]
pub struct TunnelPlan {
    /// Applied to the destination → client direction.
    pub body: Held<BodyPlan>,
    /// The earliest of those still running ends the tunnel, counted from when it opened.
    pub disconnect: Held<Disconnect>,
    /// The client connection's: a reset turns it on before the connection is dropped.
    pub switch: ResetSwitch,
    /// The listener's open tunnels, which a drain waits for and, at the end of its grace, closes.
    pub drain: Option<TunnelDrain>,
}

/// How a tunnel takes part in its listener's drain.
#[derive(Debug, Clone)]
pub struct TunnelDrain {
    pub tunnels: Arc<Tunnels>,
    /// A WebSocket: closed with a close frame (1001, going away) to both ends, between two frames.
    pub websocket: bool,
}

/// A listener's open tunnels (CONNECT, WebSocket): counted, so a drain waits for them like for
/// connections, and told when the drain's grace is over.
#[derive(Debug)]
pub struct Tunnels {
    closing: watch::Sender<bool>,
    open: AtomicUsize,
    changed: Notify,
}

/// Counts one tunnel as open while it lives.
#[derive(Debug)]
pub struct TunnelGuard(Arc<Tunnels>);

impl Drop for TunnelGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
        self.0.changed.notify_waiters();
    }
}

impl Tunnels {
    pub fn new() -> Arc<Self> {
        Arc::new(Tunnels { closing: watch::Sender::new(false), open: AtomicUsize::new(0), changed: Notify::new() })
    }

    fn enter(self: &Arc<Self>) -> TunnelGuard {
        self.open.fetch_add(1, Ordering::AcqRel);
        TunnelGuard(Arc::clone(self))
    }

    /// Tunnels open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// The drain's grace is over: every tunnel ends now (WebSockets with a close frame).
    pub fn close_all(&self) {
        self.closing.send_replace(true);
    }

    /// Resolves once no tunnel is open.
    pub async fn until_empty(&self) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.open() == 0 {
                return;
            }
            changed.await;
        }
    }
}

/// How long a closing WebSocket waits for the frame in transit to end before its close frame.
const FRAME_FINISH: Duration = Duration::from_millis(500);

/// Carries a CONNECT tunnel once hyper hands over the client's connection.
pub async fn tunnel(on_upgrade: OnUpgrade, upstream: TcpStream, plan: TunnelPlan) {
    match on_upgrade.await {
        Ok(u) => carry(TokioIo::new(u), upstream, plan).await,
        Err(e) => tracing::debug!(error = %e, "CONNECT upgrade failed"),
    }
}

/// Carries bytes both ways between a client and an upstream: client → upstream untouched, upstream →
/// client with the body plan (cut after bytes, rate) applied, the whole ended by a `disconnect`, or by the
/// end of its listener's drain (a WebSocket then gets a close frame, 1001, at both ends).
pub async fn carry<C, U>(client: C, upstream: U, plan: TunnelPlan)
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let TunnelPlan { body, mut disconnect, switch, drain } = plan;
    let _open = drain.as_ref().map(|d| d.tunnels.enter());
    let closing = drain.as_ref().map(|d| d.tunnels.closing.subscribe());
    let frames = drain.as_ref().is_some_and(|d| d.websocket).then(Frames::default);
    let opened = Instant::now();
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (mut up_read, mut up_write) = tokio::io::split(upstream);
    let work = async {
        let to_upstream = async {
            let end = pipe(&mut client_read, &mut up_write, Held::new(), closing.clone(), frames).await;
            if matches!(end, PipeEnd::Done) {
                let _ = up_write.shutdown().await;
            }
            end
        };
        let to_client = async {
            let end = pipe(&mut up_read, &mut client_write, body, closing.clone(), frames).await;
            if matches!(end, PipeEnd::Done) {
                let _ = client_write.shutdown().await;
            }
            end
        };
        // A cut or the drain's end ends the tunnel at once; otherwise each direction runs until its end.
        tokio::pin!(to_client, to_upstream);
        let first = tokio::select! {
            end = &mut to_client => (Some(end), None),
            end = &mut to_upstream => (None, Some(end)),
        };
        match first {
            (Some(PipeEnd::Cut(kind)), _) => Closed::Cut(kind),
            (Some(PipeEnd::Stopped), _) | (_, Some(PipeEnd::Stopped)) => {
                // Both directions stop at a frame boundary (within FRAME_FINISH), then the close frames go.
                let rest = async {
                    if first.0.is_none() {
                        to_client.as_mut().await;
                    } else {
                        to_upstream.as_mut().await;
                    }
                };
                match tokio::time::timeout(FRAME_FINISH, rest).await {
                    Ok(()) => Closed::Drained { between_frames: true },
                    Err(_) => Closed::Drained { between_frames: false },
                }
            }
            (Some(_), _) => match to_upstream.await {
                PipeEnd::Stopped => Closed::Drained { between_frames: true },
                _ => Closed::Done,
            },
            (_, _) => match to_client.await {
                PipeEnd::Cut(kind) => Closed::Cut(kind),
                PipeEnd::Stopped => Closed::Drained { between_frames: true },
                PipeEnd::Done => Closed::Done,
            },
        }
    };
    let end = until_disconnect(work, &mut disconnect, opened).await;
    match end {
        Closed::Done => {}
        Closed::Cut(CutKind::Reset) => switch.turn_on(),
        Closed::Drained { between_frames } => {
            if frames.is_some() && between_frames {
                let _ = up_write.write_all(&websocket::going_away_to_server(rand::random())).await;
                let _ = up_write.flush().await;
                let _ = client_write.write_all(&websocket::GOING_AWAY_TO_CLIENT).await;
            }
            let _ = up_write.shutdown().await;
            linger_close(&mut client_read, &mut client_write).await;
        }
        Closed::Cut(CutKind::Close) => linger_close(&mut client_read, &mut client_write).await,
    }
}

/// How a tunnel ended.
enum Closed {
    /// Both directions reached their end.
    Done,
    /// A fault cut it.
    Cut(CutKind),
    /// Its listener's drain ended it; `between_frames`: both directions stopped at a frame boundary.
    Drained { between_frames: bool },
}

/// A FIN, not a reset: closing a socket with unread data sends RST, so what the client still sends (its
/// close frame, say) is read and dropped for a moment after our side is shut.
async fn linger_close<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(read: &mut R, write: &mut W) {
    let _ = write.shutdown().await;
    let mut sink = [0u8; 4096];
    let drain = async { while matches!(read.read(&mut sink).await, Ok(n) if n > 0) {} };
    let _ = tokio::time::timeout(CLOSE_LINGER, drain).await;
}

/// Runs `work` until it ends, or until the earliest disconnect of the experiments still running is due
/// (counted from `opened`). An experiment that ends takes its disconnect with it.
async fn until_disconnect(
    work: impl std::future::Future<Output = Closed>,
    disconnect: &mut Held<Disconnect>,
    opened: Instant,
) -> Closed {
    tokio::pin!(work);
    loop {
        let Some(d) = disconnect.live().min_by_key(|d| d.after).copied() else { return work.await };
        let ended = disconnect.any_ended();
        tokio::select! {
            end = &mut work => return end,
            () = tokio::time::sleep_until(opened + d.after) => {
                return Closed::Cut(if d.reset { CutKind::Reset } else { CutKind::Close });
            }
            () = ended => {
                disconnect.prune();
            }
        }
    }
}

/// How long a closed tunnel keeps reading (and dropping) what the client still sends, so the close is a FIN.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// How one direction of a tunnel ended.
#[derive(Debug, Clone, Copy)]
enum PipeEnd {
    /// The source finished (or failed).
    Done,
    /// A cut of the body plan.
    Cut(CutKind),
    /// The drain's grace ended; with frames, at a frame boundary.
    Stopped,
}

/// Copies `from` into `to` under the experiments' plans in `held` (those still running), until the
/// source ends, a cut, or `closing` turns true (with `frames`: at the next frame boundary).
async fn pipe<R, W>(
    from: &mut R,
    to: &mut W,
    mut held: Held<BodyPlan>,
    mut closing: Option<watch::Receiver<bool>>,
    mut frames: Option<Frames>,
) -> PipeEnd
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 * 1024];
    let mut sent: u64 = 0;
    let started = Instant::now();
    let mut plan = BodyPlan::combined(held.live());
    let mut ended = held.any_ended();
    loop {
        let stopping = closing.as_ref().is_some_and(|c| *c.borrow());
        let want = match next_read(&plan, sent, buf.len(), stopping, frames.as_ref()) {
            Ok(want) => want,
            Err(end) => {
                let _ = to.flush().await;
                return end;
            }
        };
        let read = tokio::select! {
            read = from.read(buf.get_mut(..want).unwrap_or_default()) => read,
            () = &mut ended => {
                // An experiment ended: go on under the plans of those left (a read cancelled here took nothing).
                held.prune();
                plan = BodyPlan::combined(held.live());
                ended = held.any_ended();
                continue;
            }
            open = closing_changed(&mut closing), if !stopping => {
                if !open {
                    // The listener is gone without a drain's end: nothing more to wait for.
                    closing = None;
                }
                continue;
            }
        };
        let n = match read {
            Ok(0) | Err(_) => return PipeEnd::Done,
            Ok(n) => n,
        };
        let chunk = buf.get(..n).unwrap_or_default();
        if to.write_all(chunk).await.is_err() || to.flush().await.is_err() {
            return PipeEnd::Done;
        }
        if let Some(f) = &mut frames {
            f.feed(chunk);
        }
        sent += n as u64;
        if let Some(rate) = plan.rate {
            let due = started + Duration::from_secs_f64(sent as f64 / rate.get() as f64);
            tokio::select! {
                () = tokio::time::sleep_until(due) => {}
                () = &mut ended => {
                    held.prune();
                    plan = BodyPlan::combined(held.live());
                    ended = held.any_ended();
                }
            }
        }
    }
}

/// How much the next read of a pipe may take: the buffer, within the room before a cut and a throttle's
/// piece, and while `stopping` the rest of the frame. `Err`: the pipe ends here (its cut is reached, or it
/// stops at a frame boundary).
fn next_read(
    plan: &BodyPlan,
    sent: u64,
    buf: usize,
    stopping: bool,
    frames: Option<&Frames>,
) -> Result<usize, PipeEnd> {
    let room = plan.cut.map(|(n, _)| n.saturating_sub(sent));
    if room == Some(0) {
        return Err(plan.cut.map_or(PipeEnd::Done, |(_, kind)| PipeEnd::Cut(kind)));
    }
    let mut want = buf;
    if let Some(room) = room {
        want = want.min(usize::try_from(room).unwrap_or(usize::MAX));
    }
    if let Some(rate) = plan.rate {
        want = want.min(piece(rate));
    }
    if stopping {
        match frames {
            Some(f) if !f.at_boundary() => want = want.min(usize::try_from(f.left_in_frame()).unwrap_or(usize::MAX)),
            _ => return Err(PipeEnd::Stopped),
        }
    }
    Ok(want)
}

/// Waits for a change of `closing`; false when its sender is gone. Never resolves without one.
async fn closing_changed(closing: &mut Option<watch::Receiver<bool>>) -> bool {
    match closing {
        Some(c) => c.changed().await.is_ok(),
        None => std::future::pending().await,
    }
}

/// A throttled tunnel moves at most 50 ms worth of bytes at a time.
fn piece(rate: NonZeroU64) -> usize {
    usize::try_from(rate.get() / 20).unwrap_or(usize::MAX).clamp(1, 16 * 1024)
}

/// Most of what a blackholed tunnel's client sends that is kept (for the destination, should the
/// experiment end first); past it the client meets TCP backpressure, as it would behind a real blackhole.
const BLACKHOLE_KEEP: usize = 64 * 1024;

/// Where a blackholed tunnel goes if its experiment ends before the blackhole does.
pub struct Release {
    /// The CONNECT's `host:port`.
    pub authority: String,
    pub connect_timeout: Duration,
    /// The other experiments' faults on the tunnel.
    pub plan: TunnelPlan,
}

/// A blackholed CONNECT: answered 200, then nothing comes back, until the client leaves or `until` (then
/// the connection closes). What the client sends is kept, not answered (up to [`BLACKHOLE_KEEP`]): when
/// the experiment ends first, the tunnel opens to the destination after all, with those bytes first.
pub fn blackhole_tunnel(
    on_upgrade: OnUpgrade,
    until: Instant,
    lifeline: Lifeline,
    release: Release,
) -> Response<ProxyBody> {
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else { return };
        let mut client = TokioIo::new(upgraded);
        let mut kept = Vec::new();
        let swallow = async {
            let mut sink = [0u8; 4096];
            while kept.len() < BLACKHOLE_KEEP {
                match client.read(&mut sink).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => kept.extend_from_slice(sink.get(..n).unwrap_or_default()),
                }
            }
            // Full: the client waits on its own send buffer from here on.
            std::future::pending::<()>().await
        };
        let released = tokio::select! {
            // The client left.
            () = swallow => false,
            () = tokio::time::sleep_until(until) => false,
            () = lifeline.ended() => true,
        };
        if !released {
            return;
        }
        let Ok(mut upstream) = connect(&release.authority, release.connect_timeout).await else { return };
        if upstream.write_all(&kept).await.is_err() {
            return;
        }
        carry(client, upstream, release.plan).await;
    });
    established()
}

/// A blackholed HTTP request: no answer until `until`, then the connection closes. `None`: the experiment
/// ended first, and the request goes on.
pub async fn blackhole_request(until: Instant, lifeline: &Lifeline) -> Option<Dropped> {
    tokio::select! {
        () = tokio::time::sleep_until(until) => Some(Dropped),
        () = lifeline.ended() => None,
    }
}

/// When a blackhole ends: its hold, and never after the experiment.
pub fn blackhole_until(b: &Blackhole, experiment_ends: Instant) -> Instant {
    match b.hold {
        Some(hold) => (Instant::now() + hold).min(experiment_ends),
        None => experiment_ends,
    }
}

/// An injected name-resolution failure, as a proxy reports one: 502.
pub fn unresolvable(host: Option<&str>, answer: crate::fault::DnsAnswer) -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::full(format!(
        "could not resolve host {}: {}\n",
        host.unwrap_or("(none)"),
        answer.message()
    )));
    *r.status_mut() = StatusCode::BAD_GATEWAY;
    r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}
