//! The load side of `bench/safety.sh`: traffic that a drain, a reload or a flood must not hurt, and the
//! floods themselves. Loopback only; every mode ends by itself.
//!
//! ```sh
//! cargo run --release --example safety_load -- upstream 127.0.0.1:25001
//! cargo run --release --example safety_load -- traffic 127.0.0.1:25000 --seconds 20 --term-after 10 --pid PID
//! cargo run --release --example safety_load -- traffic 127.0.0.1:25000 --seconds 20 --hup-every 2 --pid PID
//! cargo run --release --example safety_load -- flood 127.0.0.1:25000 rapid-reset --seconds 10
//! ```
//!
//! `upstream ADDR`: an HTTP/1.1 + h2c server (`/` answers "ok", `/big?n=BYTES` streams BYTES bytes) and a
//! WebSocket echo under `/ws`.
//!
//! `traffic ADDR`: HTTP/1.1 keep-alive clients, h2c clients, WebSocket clients echoing a message every 50
//! ms, and clients downloading 50 MB bodies, for `--seconds`. With `--term-after S --pid PID` it sends
//! SIGTERM to PID at S seconds and starts no new request from then on: every request already started must
//! finish, every WebSocket must end with a close frame 1001. With `--hup-every S --pid PID` it sends SIGHUP
//! every S seconds and every request must succeed. Prints one JSON object.
//!
//! `flood ADDR KIND`: measures a normal client's latency (one HTTP/1.1 GET at a time) for `--seconds`,
//! then again while KIND runs: `rapid-reset` (HTTP/2 HEADERS then RST_STREAM, as fast as the socket takes),
//! `ping` (HTTP/2 PING frames), `settings` (HTTP/2 SETTINGS frames), `slowloris` (1000 connections
//! trickling a head), `idle` (2000 connections that send nothing). Prints one JSON object.

#![allow(
    clippy::indexing_slicing,
    clippy::cast_possible_truncation,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a load tool: its input is its own"
)]

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tokio_tungstenite::tungstenite::{protocol::frame::coding::CloseCode, Message};

type BoxBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn num(args: &[String], name: &str, default: u64) -> u64 {
    arg(args, name).and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(mode), Some(addr)) = (args.first(), args.get(1)) else {
        eprintln!("usage: safety_load upstream ADDR | traffic ADDR [options] | flood ADDR KIND [--seconds N]");
        std::process::exit(2);
    };
    let addr: SocketAddr = addr.parse()?;
    if !addr.ip().is_loopback() {
        return Err("loopback addresses only".into());
    }
    match mode.as_str() {
        "upstream" => upstream(addr).await,
        "traffic" => traffic(addr, &args).await,
        "flood" => {
            flood(addr, args.get(2).map(String::as_str).unwrap_or("rapid-reset"), num(&args, "--seconds", 10)).await
        }
        other => Err(format!("unknown mode {other}").into()),
    }
}

// === upstream ===

async fn upstream(addr: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind(addr).await?;
    println!("upstream on {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(stream), hyper::service::service_fn(answer))
                .await;
        });
    }
}

/// A WebSocket upgrade on any request of a connection (a proxy may send it on a pooled one): 101, then an
/// echo of every text or binary message.
fn websocket_echo(mut req: Request<Incoming>) -> Response<BoxBody> {
    use tokio_tungstenite::tungstenite::{handshake::derive_accept_key, protocol::Role};
    let Some(key) = req.headers().get("sec-websocket-key").map(|k| derive_accept_key(k.as_bytes())) else {
        let mut r = Response::new(Full::new(Bytes::from_static(b"not a websocket request\n")).boxed());
        *r.status_mut() = http::StatusCode::BAD_REQUEST;
        return r;
    };
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(io) = upgrade.await else { return };
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(TokioIo::new(io), Role::Server, None).await;
        while let Some(Ok(m)) = ws.next().await {
            if (m.is_text() || m.is_binary()) && ws.send(m).await.is_err() {
                break;
            }
        }
    });
    Response::builder()
        .status(http::StatusCode::SWITCHING_PROTOCOLS)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-accept", key)
        .body(Empty::new().boxed())
        .unwrap_or_else(|_| Response::new(Empty::new().boxed()))
}

async fn answer(req: Request<Incoming>) -> Result<Response<BoxBody>, Infallible> {
    if req.uri().path().starts_with("/ws") {
        return Ok(websocket_echo(req));
    }
    let n: u64 = req.uri().query().and_then(|q| q.strip_prefix("n=")).and_then(|v| v.parse().ok()).unwrap_or(0);
    if req.uri().path() == "/big" {
        let chunks = futures_util::stream::unfold(0u64, move |sent| async move {
            (sent < n).then(|| {
                let len = (n - sent).min(64 * 1024);
                (Ok::<_, Infallible>(Frame::data(Bytes::from(vec![b'x'; len as usize]))), sent + len)
            })
        });
        return Ok(Response::new(BodyExt::boxed(StreamBody::new(chunks))));
    }
    Ok(Response::new(Full::new(Bytes::from_static(b"ok\n")).boxed()))
}

// === traffic ===

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    /// Answered by an experiment's fault (not counted as failed).
    injected: AtomicU64,
    failed: AtomicU64,
    ws_messages: AtomicU64,
    ws_close_1001: AtomicU64,
    ws_cut: AtomicU64,
    ws_upgrade_failed: AtomicU64,
    downloads_ok: AtomicU64,
    downloads_failed: AtomicU64,
}

async fn traffic(addr: SocketAddr, args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let seconds = num(args, "--seconds", 20);
    let term_after = arg(args, "--term-after").and_then(|v| v.parse::<u64>().ok());
    let hup_every = arg(args, "--hup-every").and_then(|v| v.parse::<u64>().ok());
    let pid = arg(args, "--pid");
    let (h1, h2, ws, downloads) =
        (num(args, "--h1", 16), num(args, "--h2", 4), num(args, "--ws", 32), num(args, "--downloads", 4));
    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    let h1_client: hyper_util::client::legacy::Client<_, Empty<Bytes>> =
        hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http();
    let h2_client: hyper_util::client::legacy::Client<_, Empty<Bytes>> =
        hyper_util::client::legacy::Client::builder(TokioExecutor::new()).http2_only(true).build_http();
    for (client, n) in [(h1_client.clone(), h1), (h2_client, h2)] {
        for _ in 0..n {
            let (client, counts, stop) = (client.clone(), Arc::clone(&counts), Arc::clone(&stop));
            tasks.push(tokio::spawn(async move {
                while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                    let Ok(req) = Request::get(format!("http://{addr}/")).body(Empty::new()) else { return };
                    let done = async {
                        let resp = client.request(req).await.map_err(|e| format!("request: {e:?}"))?;
                        let status = resp.status();
                        // An experiment's abort (the soak's churn) is no proxy error: it has no
                        // `x-edgefault-error`.
                        let injected = !status.is_success() && !resp.headers().contains_key("x-edgefault-error");
                        resp.into_body().collect().await.map_err(|e| format!("body: {e}"))?;
                        if status.is_success() || injected {
                            Ok(injected)
                        } else {
                            Err(format!("status {status}"))
                        }
                    };
                    match tokio::time::timeout(Duration::from_secs(10), done).await {
                        Ok(Ok(false)) => counts.ok.fetch_add(1, Ordering::Relaxed),
                        Ok(Ok(true)) => counts.injected.fetch_add(1, Ordering::Relaxed),
                        Ok(Err(e)) => {
                            eprintln!("request failed: {e}");
                            counts.failed.fetch_add(1, Ordering::Relaxed)
                        }
                        Err(_) => {
                            eprintln!("request failed: no answer in 10 s");
                            counts.failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            }));
        }
    }
    for _ in 0..downloads {
        let (client, counts, stop) = (h1_client.clone(), Arc::clone(&counts), Arc::clone(&stop));
        tasks.push(tokio::spawn(async move {
            while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                let Ok(req) = Request::get(format!("http://{addr}/big?n=50000000")).body(Empty::new()) else { return };
                let done = async {
                    let resp = client.request(req).await.ok()?;
                    let injected = !resp.status().is_success() && !resp.headers().contains_key("x-edgefault-error");
                    let body = resp.into_body().collect().await.ok()?;
                    Some(if injected { 0 } else { body.to_bytes().len() })
                };
                match tokio::time::timeout(Duration::from_secs(60), done).await {
                    Ok(Some(50_000_000)) => counts.downloads_ok.fetch_add(1, Ordering::Relaxed),
                    Ok(Some(0)) => counts.injected.fetch_add(1, Ordering::Relaxed),
                    _ => counts.downloads_failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for _ in 0..ws {
        let counts = Arc::clone(&counts);
        tasks.push(tokio::spawn(async move {
            let mut socket = match tokio_tungstenite::connect_async(format!("ws://{addr}/ws/echo")).await {
                Ok((socket, _)) => socket,
                Err(e) => {
                    eprintln!("websocket upgrade failed: {e}");
                    counts.ws_upgrade_failed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            };
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            loop {
                tokio::select! {
                    _ = tick.tick(), if Instant::now() < until => {
                        if let Err(e) = socket.send(Message::text("ping")).await {
                            eprintln!("websocket send failed: {e}");
                            counts.ws_cut.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                    }
                    m = socket.next() => match m {
                        Some(Ok(Message::Close(Some(f)))) if f.code == CloseCode::Away => {
                            counts.ws_close_1001.fetch_add(1, Ordering::Relaxed);
                            let _ = socket.close(None).await;
                            return;
                        }
                        Some(Ok(Message::Text(_))) => { counts.ws_messages.fetch_add(1, Ordering::Relaxed); }
                        Some(Ok(_)) => {}
                        other => {
                            if Instant::now() < until {
                                eprintln!("websocket ended without a close 1001: {other:?}");
                                counts.ws_cut.fetch_add(1, Ordering::Relaxed);
                            }
                            return;
                        }
                    },
                    () = tokio::time::sleep_until(until.into()) => {
                        let _ = socket.close(None).await;
                        return;
                    }
                }
            }
        }));
    }
    let started = Instant::now();
    let mut hups = 0;
    let mut term_at = None;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let elapsed = started.elapsed().as_secs();
        if let (Some(every), Some(pid)) = (hup_every, &pid) {
            if elapsed >= every * (hups + 1) {
                hups += 1;
                let _ = std::process::Command::new("kill").args(["-HUP", pid]).status();
            }
        }
        if let (Some(after), Some(pid), None) = (term_after, &pid, term_at) {
            if elapsed >= after {
                // No new request from here on; those in flight must finish within the drain.
                stop.store(true, Ordering::Relaxed);
                let _ = std::process::Command::new("kill").args(["-TERM", pid]).status();
                term_at = Some(Instant::now());
            }
        }
    }
    for t in tasks {
        let _ = t.await;
    }
    let c = &counts;
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    println!(
        "{}",
        serde_json::json!({
            "requests_ok": get(&c.ok),
            "requests_failed": get(&c.failed),
            "requests_injected": get(&c.injected),
            "downloads_ok": get(&c.downloads_ok),
            "downloads_failed": get(&c.downloads_failed),
            "websockets": ws,
            "ws_messages": get(&c.ws_messages),
            "ws_closed_1001": get(&c.ws_close_1001),
            "ws_cut": get(&c.ws_cut),
            "ws_upgrade_failed": get(&c.ws_upgrade_failed),
            "sighups": hups,
            "sigterm_after_s": term_after,
        })
    );
    Ok(())
}

// === flood ===

async fn flood(addr: SocketAddr, kind: &str, seconds: u64) -> Result<(), Box<dyn std::error::Error>> {
    let quiet = probe(addr, Duration::from_secs(seconds)).await;
    let running = Arc::new(AtomicBool::new(true));
    let sent = Arc::new(AtomicU64::new(0));
    let mut floods = Vec::new();
    let attackers = match kind {
        "rapid-reset" | "ping" | "settings" => 4,
        _ => 1,
    };
    for _ in 0..attackers {
        let (running, sent, kind) = (Arc::clone(&running), Arc::clone(&sent), kind.to_owned());
        floods.push(tokio::spawn(async move {
            while running.load(Ordering::Relaxed) {
                let _ = attack(addr, &kind, &running, &sent).await;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let under = probe(addr, Duration::from_secs(seconds)).await;
    running.store(false, Ordering::Relaxed);
    for f in floods {
        let _ = f.await;
    }
    println!(
        "{}",
        serde_json::json!({ "kind": kind, "quiet": quiet, "flooded": under, "flood_units_sent": sent.load(Ordering::Relaxed) })
    );
    Ok(())
}

/// A normal client: one GET at a time on a keep-alive connection; its latency percentiles and failures.
async fn probe(addr: SocketAddr, for_: Duration) -> serde_json::Value {
    let client: hyper_util::client::legacy::Client<_, Empty<Bytes>> =
        hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http();
    let until = Instant::now() + for_;
    let (mut lat, mut failed) = (Vec::new(), 0u64);
    while Instant::now() < until {
        let t = Instant::now();
        let Ok(req) = Request::get(format!("http://{addr}/")).body(Empty::new()) else { break };
        let done = async { client.request(req).await.ok()?.into_body().collect().await.ok() };
        match tokio::time::timeout(Duration::from_secs(5), done).await {
            Ok(Some(_)) => lat.push(t.elapsed()),
            _ => failed += 1,
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    lat.sort_unstable();
    let pct =
        |q: f64| lat.get(((lat.len() as f64 - 1.0) * q).max(0.0) as usize).map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    serde_json::json!({ "requests": lat.len(), "failed": failed, "p50_ms": pct(0.5), "p99_ms": pct(0.99), "max_ms": pct(1.0) })
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// One attacking connection, until the server closes it or the flood ends.
async fn attack(addr: SocketAddr, kind: &str, running: &AtomicBool, sent: &AtomicU64) -> std::io::Result<()> {
    match kind {
        "slowloris" => {
            let mut conns = Vec::new();
            for _ in 0..1000 {
                if let Ok(mut s) = TcpStream::connect(addr).await {
                    let _ = s.write_all(b"GET / HTTP/1.1\r\n").await;
                    conns.push(s);
                }
            }
            while running.load(Ordering::Relaxed) && !conns.is_empty() {
                let mut alive = Vec::new();
                for mut s in conns {
                    if s.write_all(b"x-a: b\r\n").await.is_ok() {
                        sent.fetch_add(1, Ordering::Relaxed);
                        alive.push(s);
                    }
                }
                conns = alive;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Ok(())
        }
        "idle" => {
            let mut conns = Vec::new();
            for _ in 0..2000 {
                if let Ok(s) = TcpStream::connect(addr).await {
                    sent.fetch_add(1, Ordering::Relaxed);
                    conns.push(s);
                }
            }
            while running.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(())
        }
        _ => {
            let mut s = TcpStream::connect(addr).await?;
            s.write_all(PREFACE).await?;
            s.write_all(&frame(4, 0, 0, &[])).await?;
            // Read (and drop) what the server sends, so its writes never block on us.
            let (mut r, mut w) = s.into_split();
            let reader = tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                while matches!(r.read(&mut buf).await, Ok(n) if n > 0) {}
            });
            // HPACK, static table: :method GET, :scheme http, :path /, :authority "x".
            let headers = [0x82u8, 0x86, 0x84, 0x41, 0x01, b'x'];
            let mut stream = 1u32;
            let mut batch = Vec::with_capacity(64 * 1024);
            while running.load(Ordering::Relaxed) {
                batch.clear();
                for _ in 0..100 {
                    match kind {
                        "rapid-reset" => {
                            batch.extend(frame(1, 0x4 | 0x1, stream, &headers));
                            batch.extend(frame(3, 0, stream, &8u32.to_be_bytes()));
                            stream = stream.wrapping_add(2) & 0x7fff_ffff;
                        }
                        "ping" => batch.extend(frame(6, 0, 0, &[0; 8])),
                        _ => batch.extend(frame(4, 0, 0, &[0, 3, 0, 0, 0, 100])),
                    }
                }
                if w.write_all(&batch).await.is_err() {
                    break;
                }
                sent.fetch_add(100, Ordering::Relaxed);
            }
            reader.abort();
            Ok(())
        }
    }
}
