//! TLS on an ingress listener: HTTP/1.1 and HTTP/2 by ALPN, `x-forwarded-proto: https`, and the
//! certificate reloaded when its files change (a broken file keeps the previous one).

use std::{sync::Arc, time::Duration};

use crate::support::*;
use bytes::Bytes;
use edgefault::config::{Config, Overrides};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};

fn tls_proxy_yaml(up: std::net::SocketAddr, cert: &std::path::Path, key: &std::path::Path) -> String {
    format!(
        "listeners:\n  - name: web\n    bind: 127.0.0.1:0\n    tls: {{ cert_file: {:?}, key_file: {:?} }}\n    routes:\n      - {{ name: default, upstream: \"http://{up}\" }}\ncontrol: {{ bind: \"127.0.0.1:0\" }}\n",
        cert.display().to_string(),
        key.display().to_string()
    )
}

async fn get_h1(proxy: &Proxy, ca: &str, path: &str) -> Result<(StatusCode, http::HeaderMap), String> {
    let mut sender = tls_client(proxy.addr, ca, "localhost", false).await.map_err(|e| e.to_string())?;
    let resp = sender
        .send_request(Request::get(path).header("host", "localhost").body(body(Bytes::new())).expect("req"))
        .await
        .map_err(|e| e.to_string())?;
    Ok((resp.status(), resp.headers().clone()))
}

#[tokio::test]
async fn a_tls_listener_serves_http1_and_http2_and_says_https_upstream() {
    let up = upstream().await;
    let (ca, cert, key) = test_certificate_pem(&["localhost"]);
    let (cert, key) = (temp_file("cert.pem", &cert), temp_file("key.pem", &key));
    let proxy = proxy_yaml(&tls_proxy_yaml(up, &cert, &key)).await;

    let (status, headers) = get_h1(&proxy, &ca, "/echo").await.expect("HTTP/1.1 over TLS");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-seen-x-forwarded-proto"], "https");

    // HTTP/2 by ALPN.
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca.as_bytes()) {
        roots.add(c.expect("pem")).expect("root");
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(proxy.addr).await.expect("tcp");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(rustls::pki_types::ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut h2, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await.expect("h2");
    tokio::spawn(conn);
    let resp = h2
        .send_request(Request::get("https://localhost/echo").body(body(Bytes::new())).expect("req"))
        .await
        .expect("response");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["x-seen-version"], "HTTP/2.0");
    let _ = resp.into_body().collect().await;

    // Faults apply as on a plain listener.
    proxy.start("name: down\nfaults: [{ abort: { http_status: 502, page: edge } }]\n").await;
    let (status, _) = get_h1(&proxy, &ca, "/").await.expect("response");
    assert_eq!(status, StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn a_changed_certificate_is_served_without_a_restart_and_a_broken_one_is_not() {
    let up = upstream().await;
    let (ca1, cert1, key1) = test_certificate_pem(&["localhost"]);
    let (cert, key) = (temp_file("cert.pem", &cert1), temp_file("key.pem", &key1));
    let proxy = proxy_yaml(&tls_proxy_yaml(up, &cert, &key)).await;
    assert!(get_h1(&proxy, &ca1, "/").await.is_ok());

    // A half-written pair (certificate of one key, the other key): refused, the old one stays.
    let (ca2, cert2, key2) = test_certificate_pem(&["localhost"]);
    std::fs::write(&cert, &cert2).expect("write cert");
    tokio::time::sleep(edgefault::proxy::tls_listen::RELOAD_CHECK * 2).await;
    assert!(get_h1(&proxy, &ca1, "/").await.is_ok(), "the previous certificate is still served");

    // The pair completed: the new certificate is served to new connections.
    std::fs::write(&key, &key2).expect("write key");
    let deadline = std::time::Instant::now() + edgefault::proxy::tls_listen::RELOAD_CHECK * 5;
    loop {
        if get_h1(&proxy, &ca2, "/").await.is_ok() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "new certificate never served");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(get_h1(&proxy, &ca1, "/").await.is_err(), "the old CA no longer verifies");
}

#[test]
fn bad_tls_files_are_refused_with_their_place() {
    let (_, cert, key) = test_certificate_pem(&["localhost"]);
    let (_, _, other_key) = test_certificate_pem(&["localhost"]);
    let cert = temp_file("cert.pem", &cert);
    let key = temp_file("key.pem", &key);
    let other_key = temp_file("other.pem", &other_key);
    let missing = std::env::temp_dir().join("edgefault-missing-key.pem");
    let cases = [
        (cert.clone(), missing, "listeners[0].tls.key_file: cannot read"),
        (cert.clone(), other_key, "listeners[0].tls.key_file"),
        (key.clone(), key.clone(), "listeners[0].tls.cert_file"),
    ];
    for (c, k, expected) in cases {
        let yaml = format!(
            "listeners:\n  - name: web\n    bind: 127.0.0.1:0\n    tls: {{ cert_file: {:?}, key_file: {:?} }}\n    routes: [{{ name: a, upstream: \"http://127.0.0.1:1\" }}]\n",
            c.display().to_string(),
            k.display().to_string()
        );
        let e = Config::from_yaml(&yaml, "t.yaml", &Overrides::default()).expect_err("refused");
        assert!(e.to_string().contains(expected), "expected {expected:?} in:\n{e}");
    }
}
