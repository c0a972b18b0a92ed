//! Accepting connections: HTTP/1.1 and cleartext HTTP/2 on one port, each connection served until the
//! client leaves or shutdown drains it.

use std::{sync::Arc, time::Duration};

use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
};
use tokio::{
    net::TcpListener,
    sync::{watch, Semaphore},
    task::JoinSet,
    time::Instant,
};

use super::{
    conn::{Activity, Expiry, ResetOnDrop, ResetSwitch, Timeouts, Watched},
    service::{ConnService, ReverseProxy},
    tls_listen::{HandshakeError, ListenerTls},
};

/// Bounds on what one listener takes from its clients.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Open connections; past it, new ones wait in the accept backlog.
    pub max_connections: usize,
    /// Largest request head; larger gets 431 (HTTP/1) or a stream error (HTTP/2).
    pub max_header_bytes: usize,
    /// When a connection that does nothing is closed.
    pub timeouts: Timeouts,
}

/// Waits for a free connection slot, then for the next connection, which holds the slot. With no slot
/// free, connections wait in the kernel's backlog. `None` once `shutdown` resolves.
pub(super) async fn next_connection<F: std::future::Future<Output = ()>>(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
    shutdown: &mut std::pin::Pin<&mut F>,
    name: &str,
) -> Option<(tokio::net::TcpStream, std::net::SocketAddr, tokio::sync::OwnedSemaphorePermit)> {
    let slot = tokio::select! {
        slot = Arc::clone(slots).acquire_owned() => slot.ok()?,
        () = shutdown.as_mut() => return None,
    };
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => return Some((stream, peer, slot)),
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(listener = %name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            () = shutdown.as_mut() => return None,
        }
    }
}

/// Serves `listener` until `shutdown` resolves, then lets open connections finish for up to `grace`
/// (each is asked to close once idle: HTTP/1 after its response, HTTP/2 with a GOAWAY), and closes those
/// still open then.
pub async fn serve(
    listener: TcpListener,
    proxy: Arc<ReverseProxy>,
    tls: Option<Arc<ListenerTls>>,
    shutdown: impl std::future::Future<Output = ()>,
    grace: Duration,
    bounds: Bounds,
) {
    let builder = server_builder(&bounds);
    let slots = Arc::new(Semaphore::new(bounds.max_connections));
    let (drain, draining) = watch::channel(false);
    let mut open = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while open.try_join_next().is_some() {}
        let Some((stream, client, slot)) = next_connection(&listener, &slots, &mut shutdown, proxy.name()).await else {
            break;
        };
        let _ = stream.set_nodelay(true);
        let reset = ResetSwitch::default();
        let activity = Activity::new();
        let service =
            ConnService { proxy: Arc::clone(&proxy), client, reset: reset.clone(), activity: Arc::clone(&activity) };
        let stream = ResetOnDrop::new(stream, reset.clone());
        let (tls, proxy, builder, draining) = (tls.clone(), Arc::clone(&proxy), builder.clone(), draining.clone());
        let timeouts = bounds.timeouts;
        open.spawn(async move {
            match tls {
                // The handshake runs on the connection's own task, each half bounded like a request head (a
                // stall injected by a TLS fault aside). Boxed: a plain connection's task does not carry the
                // size of a TLS session's state.
                Some(tls) => {
                    Box::pin(async move {
                        let handshake = tls.handshake(stream, &reset, |sni| proxy.decide_tls(sni, client.ip())).await;
                        proxy.count_handshake(&handshake);
                        match handshake.result {
                            Ok(tls_stream) => {
                                let io = TokioIo::new(Watched::new(tls_stream, Arc::clone(&activity)));
                                let conn = builder.serve_connection_with_upgrades(io, service);
                                run(conn, &activity, timeouts, draining, &proxy, client).await;
                            }
                            // Ours to fix, not the client's doing.
                            Err(e @ HandshakeError::FaultCertificate(_)) => {
                                tracing::warn!(listener = %proxy.name(), %client, error = %e, "no TLS session")
                            }
                            Err(e) => tracing::debug!(listener = %proxy.name(), %client, error = %e, "no TLS session"),
                        }
                    })
                    .await
                }
                None => {
                    let io = TokioIo::new(Watched::new(stream, Arc::clone(&activity)));
                    let conn = builder.serve_connection_with_upgrades(io, service);
                    run(conn, &activity, timeouts, draining, &proxy, client).await;
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    drain_connections(open, drain, grace, &proxy).await;
}

/// hyper's server for both protocols: request heads bounded by `limits.max_header_bytes`, keep-alive.
fn server_builder(bounds: &Bounds) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // Heads are timed by the connection's own clock (`conn`): hyper's would also time the idle wait
        // between keep-alive requests, and nothing before the first byte.
        .header_read_timeout(None)
        .keep_alive(true)
        .max_buf_size(bounds.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(1024)
        .max_header_list_size(u32::try_from(bounds.max_header_bytes).unwrap_or(u32::MAX));
    builder
}

/// Lets the open connections finish for up to `grace` (asked to close once idle), then closes them; then the
/// tunnels, likewise.
async fn drain_connections(mut open: JoinSet<()>, drain: watch::Sender<bool>, grace: Duration, proxy: &ReverseProxy) {
    if !open.is_empty() {
        tracing::info!(listener = %proxy.name(), open = open.len(), "draining connections");
    }
    let _ = drain.send(true);
    let deadline = Instant::now() + grace;
    if tokio::time::timeout_at(deadline, async { while open.join_next().await.is_some() {} }).await.is_err() {
        tracing::warn!(listener = %proxy.name(), open = open.len(), "drain grace period over; closing the remaining connections");
        open.shutdown().await;
    }
    // Tunnels (WebSockets, CONNECT) go on until the grace is over, then end: a WebSocket with a close frame
    // (1001, going away) to both ends.
    let tunnels = proxy.tunnels();
    if tunnels.open() > 0 && tokio::time::timeout_at(deadline, tunnels.until_empty()).await.is_err() {
        tracing::info!(listener = %proxy.name(), open = tunnels.open(), "drain grace period over; closing the open tunnels");
        tunnels.close_all();
        let _ = tokio::time::timeout(TUNNEL_CLOSE, tunnels.until_empty()).await;
    }
}

/// How long tunnels get to close at the end of a drain (a WebSocket: to end the frame in transit, send
/// its close frame and read the client's).
pub const TUNNEL_CLOSE: Duration = Duration::from_secs(2);

/// Serves one connection until it ends: closes it when a timeout is due (see [`crate::proxy::conn`]), and
/// asks it to close once idle when the listener drains.
async fn run<I>(
    conn: auto::UpgradeableConnection<'_, I, ConnService, TokioExecutor>,
    activity: &Activity,
    timeouts: Timeouts,
    mut draining: watch::Receiver<bool>,
    proxy: &ReverseProxy,
    client: std::net::SocketAddr,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let conn = conn.into_owned();
    tokio::pin!(conn);
    // Once asked to close (drain, or an idle HTTP/2 connection's GOAWAY), only the connection's end is
    // awaited.
    let mut closing = false;
    loop {
        let look = activity.next_look(&timeouts);
        tokio::select! {
            ended = conn.as_mut() => {
                if activity.flooded() {
                    tracing::debug!(listener = %proxy.name(), %client, "HTTP/2 control frame flood: connection closed");
                    proxy.count_flood();
                } else if let Err(e) = ended {
                    tracing::debug!(%client, error = %e, "connection ended with an error");
                }
                return;
            }
            drained = draining.wait_for(|d| *d), if !closing => {
                closing = true;
                if drained.is_ok() {
                    conn.as_mut().graceful_shutdown();
                }
            }
            () = tokio::time::sleep_until(look), if !closing => match activity.expired(&timeouts, Instant::now()) {
                Some(Expiry::IdleH2) => {
                    tracing::debug!(listener = %proxy.name(), %client, "idle HTTP/2 connection: GOAWAY");
                    proxy.count_timeout(Expiry::IdleH2);
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
                Some(e) => {
                    tracing::debug!(listener = %proxy.name(), %client, timeout = e.as_str(), "connection closed by a timeout");
                    proxy.count_timeout(e);
                    return;
                }
                None => {}
            },
        }
    }
}
