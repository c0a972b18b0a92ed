//! Fake upstreams, built the way a test needs them and served on 127.0.0.1 (port 0) for the rest of the
//! test:
//!
//! ```ignore
//! let app = FakeUpstream::app().start().await;                         // the test app, HTTP/1.1 and h2c
//! let old = FakeUpstream::app().http1_only().start().await;            // refuses an HTTP/2 preface
//! let grpc = FakeUpstream::grpc_health().flapping(period).start().await;
//! let echo = FakeUpstream::tcp_echo().start().await;                   // raw TCP
//! let bytes = FakeUpstream::tcp_bytes(10).start().await;
//! ```

use std::{net::SocketAddr, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};
use tonic_health::{server::HealthReporter, ServingStatus};

use super::pattern;

/// What a fake upstream is, and how it behaves; [`FakeUpstream::start`] serves it.
#[derive(Debug, Clone)]
pub struct FakeUpstream {
    kind: Kind,
    http1_only: bool,
    flap: Option<Duration>,
}

#[derive(Debug, Clone)]
enum Kind {
    /// The test app of `support` (`/echo`, `/big`, `/slow`, `/trailers`, …) over HTTP/1.1 and h2c.
    App,
    /// tonic's gRPC health service, with service `checkout` serving.
    GrpcHealth,
    /// Every connection gets back what it sends, until it closes its side.
    TcpEcho,
    /// Every connection gets this many pattern bytes, then is kept open until the peer closes.
    TcpBytes(usize),
}

/// How long a flapping health service flips: its traffic stops by itself.
const FLAP_FOR: Duration = Duration::from_secs(30);

impl FakeUpstream {
    fn new(kind: Kind) -> Self {
        FakeUpstream { kind, http1_only: false, flap: None }
    }

    /// The test app (see `support::upstream`).
    pub fn app() -> Self {
        Self::new(Kind::App)
    }

    /// A real gRPC server: tonic's health service, `checkout` serving.
    pub fn grpc_health() -> Self {
        Self::new(Kind::GrpcHealth)
    }

    /// A TCP echo server.
    pub fn tcp_echo() -> Self {
        Self::new(Kind::TcpEcho)
    }

    /// A TCP server that sends `n` pattern bytes (`support::pattern`) to each connection.
    pub fn tcp_bytes(n: usize) -> Self {
        Self::new(Kind::TcpBytes(n))
    }

    /// Speaks HTTP/1.x only, as an HTTP/1.1 app does: an HTTP/2 preface gets `400` and a close.
    pub fn http1_only(mut self) -> Self {
        self.http1_only = true;
        self
    }

    /// The health service's `checkout` flips between serving and not serving every `period` (for 30 s), so a
    /// `Watch` stream gets one message per flip.
    pub fn flapping(mut self, period: Duration) -> Self {
        self.flap = Some(period);
        self
    }

    /// Serves it; returns its address.
    pub async fn start(self) -> SocketAddr {
        let addr = match self.kind {
            Kind::App => super::upstream().await,
            Kind::GrpcHealth => grpc_health(self.flap).await,
            Kind::TcpEcho => {
                serve_tcp(|mut s| async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                    let _ = w.shutdown().await;
                })
                .await
            }
            Kind::TcpBytes(n) => {
                serve_tcp(move |mut s| async move {
                    let data: Vec<u8> = (0..n as u64).map(pattern).collect();
                    if s.write_all(&data).await.is_err() {
                        return;
                    }
                    let mut sink = [0u8; 1024];
                    while let Ok(k) = s.read(&mut sink).await {
                        if k == 0 {
                            break;
                        }
                    }
                })
                .await
            }
        };
        if self.http1_only {
            http1_only_in_front_of(addr).await
        } else {
            addr
        }
    }
}

/// Accepts connections on a new port and hands each to `handle` on its own task.
async fn serve_tcp<F, Fut>(handle: F) -> SocketAddr
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a fake upstream");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            tokio::spawn(handle(stream));
        }
    });
    addr
}

/// A relay to `up` that refuses anything but HTTP/1.x.
async fn http1_only_in_front_of(up: SocketAddr) -> SocketAddr {
    serve_tcp(move |mut client| async move {
        let mut first = [0u8; 3];
        if client.peek(&mut first).await.is_err() || &first == b"PRI" {
            let _ =
                client.write_all(b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n").await;
            return;
        }
        let Ok(mut server) = tokio::net::TcpStream::connect(up).await else { return };
        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
    })
    .await
}

async fn grpc_health(flap: Option<Duration>) -> SocketAddr {
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter.set_service_status("checkout", ServingStatus::Serving).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a fake gRPC upstream");
    let addr = listener.local_addr().expect("addr");
    if let Some(period) = flap {
        tokio::spawn(flip(reporter.clone(), period));
    }
    tokio::spawn(async move {
        let _keep = reporter;
        let _ = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await;
    });
    addr
}

async fn flip(reporter: HealthReporter, period: Duration) {
    let until = tokio::time::Instant::now() + FLAP_FOR;
    let mut serving = true;
    while tokio::time::Instant::now() < until {
        tokio::time::sleep(period).await;
        serving = !serving;
        let s = if serving { ServingStatus::Serving } else { ServingStatus::NotServing };
        reporter.set_service_status("checkout", s).await;
    }
}
