//! The forward (egress) listener: absolute-form requests go to their own destination, `CONNECT` opens a
//! TCP tunnel to it. Tunnels take connection-level faults: refused (the CONNECT answered with a status),
//! delayed, held, reset or closed after some bytes, throttled, or blackholed.

use std::{num::NonZeroU64, time::Duration};

use http::{Method, Request, Response, StatusCode};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
    time::Instant,
};

use super::{
    act::{Dropped, ResetSwitch},
    body::ProxyBody,
    upstream::UpstreamError,
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
}

/// Carries a CONNECT tunnel once hyper hands over the client's connection.
pub async fn tunnel(on_upgrade: OnUpgrade, upstream: TcpStream, plan: TunnelPlan) {
    match on_upgrade.await {
        Ok(u) => carry(TokioIo::new(u), upstream, plan).await,
        Err(e) => tracing::debug!(error = %e, "CONNECT upgrade failed"),
    }
}

/// Carries bytes both ways between a client and an upstream: client → upstream untouched, upstream →
/// client with the body plan (cut after bytes, rate) applied, the whole ended by a `disconnect`.
pub async fn carry<C, U>(client: C, upstream: U, plan: TunnelPlan)
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let TunnelPlan { body, mut disconnect, switch } = plan;
    let opened = Instant::now();
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (mut up_read, mut up_write) = tokio::io::split(upstream);
    let work = async {
        let to_upstream = async {
            let _ = tokio::io::copy(&mut client_read, &mut up_write).await;
            let _ = up_write.shutdown().await;
        };
        let to_client = async {
            let cut = pipe(&mut up_read, &mut client_write, body).await;
            if cut.is_none() {
                let _ = client_write.shutdown().await;
            }
            cut
        };
        // A cut ends the tunnel at once; otherwise each direction runs until its end.
        tokio::pin!(to_client, to_upstream);
        let cut_first = tokio::select! {
            cut = &mut to_client => Some(cut),
            () = &mut to_upstream => None,
        };
        match cut_first {
            Some(Some(kind)) => Some(kind),
            Some(None) => {
                to_upstream.await;
                None
            }
            None => to_client.await,
        }
    };
    let end = until_disconnect(work, &mut disconnect, opened).await;
    match end {
        None => {}
        Some(CutKind::Reset) => switch.turn_on(),
        Some(CutKind::Close) => {
            // A FIN, not a reset: closing a socket with unread data sends RST, so what the client still sends
            // is read and dropped for a moment after our side is shut.
            let _ = client_write.shutdown().await;
            let mut sink = [0u8; 4096];
            let drain = async { while matches!(client_read.read(&mut sink).await, Ok(n) if n > 0) {} };
            let _ = tokio::time::timeout(CLOSE_LINGER, drain).await;
        }
    }
}

/// Runs `work` until it ends, or until the earliest disconnect of the experiments still running is due
/// (counted from `opened`). An experiment that ends takes its disconnect with it.
async fn until_disconnect(
    work: impl std::future::Future<Output = Option<CutKind>>,
    disconnect: &mut Held<Disconnect>,
    opened: Instant,
) -> Option<CutKind> {
    tokio::pin!(work);
    loop {
        let Some(d) = disconnect.live().min_by_key(|d| d.after).copied() else { return work.await };
        let ended = disconnect.any_ended();
        tokio::select! {
            cut = &mut work => return cut,
            () = tokio::time::sleep_until(opened + d.after) => {
                return Some(if d.reset { CutKind::Reset } else { CutKind::Close });
            }
            () = ended => {
                disconnect.prune();
            }
        }
    }
}

/// How long a closed tunnel keeps reading (and dropping) what the client still sends, so the close is a FIN.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// Copies `from` into `to` under the experiments' plans in `held` (those still running). Returns the cut
/// when one ended the copy.
async fn pipe<R, W>(from: &mut R, to: &mut W, mut held: Held<BodyPlan>) -> Option<CutKind>
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
        let room = plan.cut.map(|(n, _)| n.saturating_sub(sent));
        if room == Some(0) {
            let _ = to.flush().await;
            return plan.cut.map(|(_, kind)| kind);
        }
        let mut want = buf.len();
        if let Some(room) = room {
            want = want.min(usize::try_from(room).unwrap_or(usize::MAX));
        }
        if let Some(rate) = plan.rate {
            want = want.min(piece(rate));
        }
        let read = tokio::select! {
            read = from.read(&mut buf[..want]) => read,
            () = &mut ended => {
                // An experiment ended: go on under the plans of those left (a read cancelled here took nothing).
                held.prune();
                plan = BodyPlan::combined(held.live());
                ended = held.any_ended();
                continue;
            }
        };
        let n = match read {
            Ok(0) | Err(_) => return None,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).await.is_err() || to.flush().await.is_err() {
            return None;
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
                    Ok(n) => kept.extend_from_slice(&sink[..n]),
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
pub fn unresolvable(host: Option<&str>) -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::full(format!(
        "could not resolve host {}: no address for this name\n",
        host.unwrap_or("(none)")
    )));
    *r.status_mut() = StatusCode::BAD_GATEWAY;
    r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}
