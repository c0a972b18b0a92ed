//! Accepting connections: HTTP/1.1 and cleartext HTTP/2 on one port, each connection served until the
//! client leaves or shutdown drains it.

use std::{sync::Arc, time::Duration};

use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
};
use tokio::net::TcpListener;

use super::{
    act::{ResetOnDrop, ResetSwitch},
    service::{ConnService, ReverseProxy},
};

/// Serves `listener` until `shutdown` resolves, then lets open connections finish for up to `grace`.
pub async fn serve(
    listener: TcpListener,
    proxy: Arc<ReverseProxy>,
    shutdown: impl std::future::Future<Output = ()>,
    grace: Duration,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(30)).keep_alive(true);
    builder.http2().timer(TokioTimer::new()).max_concurrent_streams(1024);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, client) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: wait a little rather than spin.
                        tracing::warn!(listener = %proxy.name(), error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let reset = ResetSwitch::default();
                let service = ConnService { proxy: Arc::clone(&proxy), client, reset: reset.clone() };
                let stream = ResetOnDrop::new(stream, reset);
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(%client, error = %e, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
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
