//! Shared test harness: a real upstream, the proxy with its control service, and clients, all on
//! 127.0.0.1 with ports picked by the OS.
#![allow(dead_code)]

pub mod binary;
pub mod fleet;
pub mod peers;
pub mod upstream;

pub use upstream::FakeUpstream;

use std::{convert::Infallible, net::SocketAddr, time::Duration};

use bytes::Bytes;
use edgefault::{
    app::Server,
    config::{Config, Overrides},
    document,
    pb::v1::{self as v1, fault_control_client::FaultControlClient},
};
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::{TokioExecutor, TokioIo},
};
use tokio::net::TcpListener;
use tonic::transport::Channel;

/// Retries an assertion until it holds or 5 s pass.
#[macro_export]
macro_rules! assert_eventually {
    ($cond:expr, $($msg:tt)+) => {{
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            if $cond { break; }
            assert!(std::time::Instant::now() < deadline, $($msg)+);
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }};
}

pub type BoxBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn full(b: impl Into<Bytes>) -> BoxBody {
    Full::new(b.into()).boxed()
}

/// The byte at `i` of a streamed test body: a pattern that catches reordering and loss.
pub fn pattern(i: u64) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 11)) as u8
}

/// The test upstream. Paths:
/// - `/echo`: 200, the request body back; request headers mirrored as `x-seen-<name>`
/// - `/big?n=BYTES`: 200, a streamed body of n pattern bytes in 64 KiB chunks
/// - `/slow?ms=N`: 200 after N ms
/// - `/trailers`: 200, body "data", trailers `x-checksum: 42`
/// - anything else: 200 "upstream ok", with `x-upstream: test` and `x-seen-path`
async fn upstream_handler(req: Request<Incoming>) -> Result<Response<BoxBody>, Infallible> {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let param = |name: &str| -> u64 {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let mut resp = match path.as_str() {
        "/echo" => {
            let mut seen = HeaderMap::new();
            for (name, value) in req.headers() {
                if let Ok(n) = http::HeaderName::from_bytes(format!("x-seen-{name}").as_bytes()) {
                    seen.append(n, value.clone());
                }
            }
            seen.insert("x-seen-version", HeaderValue::from_str(&format!("{:?}", req.version())).expect("value"));
            let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            let mut r = Response::new(full(body));
            r.headers_mut().extend(seen);
            r
        }
        "/big" => {
            let n = param("n");
            let chunks = futures_util::stream::unfold(0u64, move |sent| async move {
                if sent >= n {
                    return None;
                }
                let len = (n - sent).min(64 * 1024);
                let chunk: Vec<u8> = (sent..sent + len).map(pattern).collect();
                Some((Ok::<_, Infallible>(Frame::data(Bytes::from(chunk))), sent + len))
            });
            Response::new(BodyExt::boxed(StreamBody::new(chunks)))
        }
        "/slow" => {
            tokio::time::sleep(Duration::from_millis(param("ms"))).await;
            Response::new(full("slow ok"))
        }
        "/trailers" => {
            let frames = futures_util::stream::iter(vec![
                Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"data"))),
                Ok(Frame::trailers({
                    let mut t = HeaderMap::new();
                    t.insert("x-checksum", HeaderValue::from_static("42"));
                    t
                })),
            ]);
            Response::new(BodyExt::boxed(StreamBody::new(frames)))
        }
        _ => {
            let mut r = Response::new(full("upstream ok"));
            r.headers_mut().insert("x-upstream", HeaderValue::from_static("test"));
            r.headers_mut()
                .insert("x-seen-path", HeaderValue::from_str(&path).unwrap_or(HeaderValue::from_static("?")));
            r
        }
    };
    resp.headers_mut().insert("x-upstream-version", HeaderValue::from_static("1"));
    Ok(resp)
}

/// Starts the test upstream (HTTP/1.1 and h2c) and returns its address.
pub async fn upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind upstream");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), hyper::service::service_fn(upstream_handler))
                    .await;
            });
        }
    });
    addr
}

/// A WebSocket echo server.
pub async fn ws_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind ws");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else { return };
                while let Some(Ok(msg)) = ws.next().await {
                    if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// An address nothing listens on.
pub async fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let a = l.local_addr().expect("addr");
    drop(l);
    a
}

pub struct Proxy {
    pub server: Server,
    pub addr: SocketAddr,
    pub control_url: String,
}

impl Proxy {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn control(&self) -> FaultControlClient<Channel> {
        FaultControlClient::connect(self.control_url.clone()).await.expect("control client")
    }

    /// Starts an experiment from YAML and returns it.
    pub async fn start(&self, yaml: &str) -> v1::Experiment {
        let mut c = self.control().await;
        c.start_experiment(v1::StartExperimentRequest { spec: Some(spec(yaml)) }).await.expect("start").into_inner()
    }

    /// The kill switch, over gRPC; returns how many experiments it ended.
    pub async fn abort_all(&self) -> u32 {
        let mut c = self.control().await;
        c.abort_all(v1::AbortAllRequest { reason: "test".into() }).await.expect("abort-all").into_inner().count
    }

    pub async fn stop(&self, id: &str) -> v1::Experiment {
        let mut c = self.control().await;
        c.stop_experiment(v1::StopExperimentRequest { id: id.into(), reason: String::new() })
            .await
            .expect("stop")
            .into_inner()
    }
}

/// The standard proxy: listener "web" with routes `api` (/api/), `dashboard` (host dash.example.com),
/// `ws` (/ws), and `default`, all to `upstream` except ws.
pub async fn proxy(upstream: SocketAddr) -> Proxy {
    proxy_yaml(&format!(
        "listeners:\n  - name: web\n    bind: 127.0.0.1:0\n    routes:\n      - {{ name: api, path_prefix: /api/, upstream: \"http://{upstream}\" }}\n      - {{ name: dashboard, hosts: [dash.example.com], upstream: \"http://{upstream}\" }}\n      - {{ name: default, upstream: \"http://{upstream}\" }}\ncontrol: {{ bind: \"127.0.0.1:0\" }}\n"
    ))
    .await
}

/// With `EDGEFAULT_TEST_LOG=FILE`, the proxies' logs (debug) go to FILE: for looking into a failure.
fn test_log() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if let Some(path) = std::env::var_os("EDGEFAULT_TEST_LOG") {
            if let Ok(file) = std::fs::File::create(path) {
                let _ = tracing_subscriber::fmt()
                    .with_env_filter("edgefault=debug")
                    .with_ansi(false)
                    .with_writer(std::sync::Mutex::new(file))
                    .try_init();
            }
        }
    });
}

pub async fn proxy_yaml(yaml: &str) -> Proxy {
    test_log();
    let config = Config::from_yaml(yaml, "test", &Overrides::default()).expect("test config");
    let server = Server::start(config).await.expect("proxy starts");
    let addr = server.listener_addrs()[0].1;
    let control_url = format!("http://{}", server.control_addr());
    Proxy { server, addr, control_url }
}

/// A gRPC health client through the proxy's first listener: a real gRPC call as an app would make it.
pub async fn health_client(proxy: &Proxy) -> tonic_health::pb::health_client::HealthClient<Channel> {
    let channel =
        Channel::from_shared(format!("http://{}", proxy.addr)).expect("uri").connect().await.expect("connect");
    tonic_health::pb::health_client::HealthClient::new(channel)
}

pub fn spec(yaml: &str) -> v1::ExperimentSpec {
    document::parse_specs(yaml).expect("test spec").remove(0)
}

pub type HttpClient = Client<HttpConnector, BoxBody>;

/// A pooled HTTP/1.1 client.
pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A pooled h2c (prior knowledge) client.
pub fn h2_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).http2_only(true).build_http()
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

pub async fn send(client: &HttpClient, req: Request<BoxBody>) -> Reply {
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .expect("no timeout")
        .expect("response");
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Reply { status: parts.status, headers: parts.headers, body }
}

pub async fn get(client: &HttpClient, url: &str) -> Reply {
    send(client, Request::get(url).body(full(Bytes::new())).expect("request")).await
}

/// A GET sent now on its own task; resolves to the reply and when its whole body had arrived.
pub fn get_later(client: &HttpClient, url: &str) -> tokio::task::JoinHandle<(Reply, std::time::Instant)> {
    let (client, url) = (client.clone(), url.to_owned());
    tokio::spawn(async move {
        let reply = send(&client, Request::get(url).body(full(Bytes::new())).expect("request")).await;
        (reply, std::time::Instant::now())
    })
}

pub fn request(method: &str, url: &str) -> http::request::Builder {
    Request::builder().method(method).uri(url)
}

pub fn body(b: impl Into<Bytes>) -> BoxBody {
    full(b)
}

/// An upstream that counts the connections it accepts; with `keep_alive: false` it closes each one after
/// its first response.
pub async fn counting_upstream(keep_alive: bool) -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::{atomic::AtomicUsize, Arc};
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind upstream");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                builder.http1().keep_alive(keep_alive);
                let _ =
                    builder.serve_connection(TokioIo::new(stream), hyper::service::service_fn(upstream_handler)).await;
            });
        }
    });
    (addr, accepted)
}

/// A fresh CA made in the test with rcgen: its certificate and key as PEM, and what signs with it.
pub struct TestCa {
    pub pem: String,
    pub key_pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    pub fn new(common_name: &str) -> TestCa {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        let key = KeyPair::generate().expect("ca key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, common_name);
        let cert = params.self_signed(&key).expect("ca cert");
        let key_pem = key.serialize_pem();
        TestCa { pem: cert.pem(), key_pem, issuer: rcgen::Issuer::new(params, key) }
    }

    /// A certificate for `names` (with `common_name` as its subject when given) that this CA signed, and
    /// its key.
    pub fn sign(&self, names: &[&str], common_name: Option<&str>) -> (rcgen::Certificate, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).expect("params");
        if let Some(cn) = common_name {
            params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        }
        (params.signed_by(&key, &self.issuer).expect("certificate"), key)
    }
}

/// A certificate for `names`, signed by a fresh CA. Returns (CA certificate PEM, server certificate chain,
/// server key), made in the test with rcgen.
pub fn test_certificate(
    names: &[&str],
) -> (String, Vec<rustls::pki_types::CertificateDer<'static>>, rustls::pki_types::PrivateKeyDer<'static>) {
    let ca = TestCa::new("edgefault test CA");
    let (cert, key) = ca.sign(names, None);
    let key_der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    (ca.pem, vec![cert.der().clone()], key_der)
}

/// Writes `contents` to a new file under the system's temp directory and returns its path.
pub fn temp_file(name: &str, contents: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("edgefault-test-{}-{}", std::process::id(), rand::random::<u64>()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write temp file");
    path
}

/// The test upstream over TLS (HTTP/1.1 and HTTP/2 by ALPN) with a certificate for `names`. Returns its
/// address and the path of a PEM file holding the CA that signed its certificate.
pub async fn tls_upstream(names: &[&str]) -> (SocketAddr, std::path::PathBuf) {
    let (ca_pem, chain, key) = test_certificate(names);
    let mut config =
        rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server config");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind tls upstream");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else { return };
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), hyper::service::service_fn(upstream_handler))
                    .await;
            });
        }
    });
    (addr, temp_file("ca.pem", &ca_pem))
}

/// Like [`test_certificate`], as PEM text: (CA certificate, server certificate, server key).
pub fn test_certificate_pem(names: &[&str]) -> (String, String, String) {
    let ca = TestCa::new("edgefault test CA");
    let (cert, key) = ca.sign(names, None);
    (ca.pem, cert.pem(), key.serialize_pem())
}

/// A TLS client connection (HTTP/2 or HTTP/1.1 offered by ALPN) trusting only the CA in `ca_pem`; returns
/// the HTTP request sender and the protocol the server chose.
pub async fn tls_client(
    addr: SocketAddr,
    ca_pem: &str,
    name: &str,
    h2: bool,
) -> Result<hyper::client::conn::http1::SendRequest<BoxBody>, Box<dyn std::error::Error + Send + Sync>> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert?)?;
    }
    let mut config =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = vec![if h2 { b"h2".to_vec() } else { b"http/1.1".to_vec() }];
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let tls = connector.connect(rustls::pki_types::ServerName::try_from(name.to_owned())?, tcp).await?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// Stops tokio's paused clock from jumping ahead by itself while held: on a paused clock the runtime
/// moves time to the next timer whenever it waits, even for socket I/O, so a test over real sockets that
/// wants time to move only by `tokio::time::advance` holds this. (A running blocking task inhibits the
/// automatic advance; this one waits until the guard is dropped.)
pub struct ClockHold(Option<std::sync::mpsc::Sender<()>>);

impl ClockHold {
    pub fn new() -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        tokio::task::spawn_blocking(move || {
            let _ = rx.recv();
        });
        ClockHold(Some(tx))
    }
}

impl Drop for ClockHold {
    fn drop(&mut self) {
        self.0.take();
    }
}

/// What `ValidateExperiment` reports for a YAML spec, in order.
pub async fn violations(proxy: &Proxy, yaml: &str) -> Vec<v1::FieldViolation> {
    let mut c = proxy.control().await;
    let r = c
        .validate_experiment(v1::ValidateExperimentRequest { spec: Some(spec(yaml)) })
        .await
        .expect("validate")
        .into_inner();
    r.violations
}

/// The field paths `ValidateExperiment` reports for a YAML spec, in order.
pub async fn violation_fields(proxy: &Proxy, yaml: &str) -> Vec<String> {
    violations(proxy, yaml).await.into_iter().map(|v| v.field).collect()
}

/// Sends `text` over a WebSocket through the proxy to the echo upstream and checks it comes back within 5 s.
pub async fn echo_once(
    socket: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    text: &str,
) {
    socket.send(tokio_tungstenite::tungstenite::Message::text(text.to_owned())).await.expect("send");
    let back = tokio::time::timeout(Duration::from_secs(5), socket.next())
        .await
        .expect("echo in time")
        .expect("open")
        .expect("frame");
    assert_eq!(back.into_text().expect("text").as_str(), text);
}
