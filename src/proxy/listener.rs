//! Accepting connections: HTTP/1.1 and cleartext HTTP/2 on one port, each connection served until the
//! client leaves or shutdown drains it.

use std::{sync::Arc, time::Duration};

use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
};
use tokio::{net::TcpListener, sync::Semaphore};

use super::{
    act::{ResetOnDrop, ResetSwitch},
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

/// Serves `listener` until `shutdown` resolves, then lets open connections finish for up to `grace`.
pub async fn serve(
    listener: TcpListener,
    proxy: Arc<ReverseProxy>,
    tls: Option<Arc<ListenerTls>>,
    shutdown: impl std::future::Future<Output = ()>,
    grace: Duration,
    bounds: Bounds,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .keep_alive(true)
        .max_buf_size(bounds.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(1024)
        .max_header_list_size(u32::try_from(bounds.max_header_bytes).unwrap_or(u32::MAX));
    let slots = Arc::new(Semaphore::new(bounds.max_connections));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let Some((stream, client, slot)) = next_connection(&listener, &slots, &mut shutdown, proxy.name()).await else {
            break;
        };
        let _ = stream.set_nodelay(true);
        let reset = ResetSwitch::default();
        let service = ConnService { proxy: Arc::clone(&proxy), client, reset: reset.clone() };
        let stream = ResetOnDrop::new(stream, reset.clone());
        if let Some(tls) = &tls {
            // The handshake runs on the connection's own task, each half bounded like a request head (a
            // stall injected by a TLS fault aside).
            let tls = Arc::clone(tls);
            let proxy = Arc::clone(&proxy);
            let builder = builder.clone();
            let watcher = graceful.watcher();
            tokio::spawn(async move {
                let handshake = tls.handshake(stream, &reset, |sni| proxy.decide_tls(sni, client.ip())).await;
                proxy.count_handshake(&handshake);
                match handshake.result {
                    Ok(tls_stream) => {
                        let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls_stream), service);
                        if let Err(e) = watcher.watch(conn.into_owned()).await {
                            tracing::debug!(%client, error = %e, "connection ended with an error");
                        }
                    }
                    // Ours to fix, not the client's doing.
                    Err(e @ HandshakeError::FaultCertificate(_)) => {
                        tracing::warn!(listener = %proxy.name(), %client, error = %e, "no TLS session")
                    }
                    Err(e) => tracing::debug!(listener = %proxy.name(), %client, error = %e, "no TLS session"),
                }
                drop(slot);
            });
            continue;
        }
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%client, error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    let open = graceful.count();
    if open > 0 {
        tracing::info!(listener = %proxy.name(), open, "draining connections");
    }
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!(listener = %proxy.name(), "drain grace period over; closing the remaining connections");
    }
}
