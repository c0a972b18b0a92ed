//! TLS faults on a listener that terminates TLS, as a real rustls client sees them: an alert or a reset
//! at the ClientHello, an expired, not-yet-valid, wrong-name or self-signed certificate (signed by the
//! listener's `fault_issuer`, the CA the client trusts), a stalled handshake, a share of clients, and the
//! SNI name matched by `match.hosts`.

use std::{
    net::SocketAddr,
    path::PathBuf,
    time::{Duration, Instant},
};

use crate::support::*;
use bytes::Bytes;
use edgefault::pb::v1;
use http::{Request, StatusCode};

/// A CA (certificate and key, as the listener's `fault_issuer`) and a server certificate it signed for
/// `localhost` and `*.example.test`: (CA PEM, files of the server pair, files of the CA pair).
struct Pki {
    ca_pem: String,
    server: (PathBuf, PathBuf),
    issuer: (PathBuf, PathBuf),
}

fn pki() -> Pki {
    let ca = TestCa::new("edgefault test CA");
    let (cert, key) = ca.sign(&["localhost", "*.example.test"], None);
    Pki {
        server: (temp_file("cert.pem", &cert.pem()), temp_file("key.pem", &key.serialize_pem())),
        issuer: (temp_file("ca.pem", &ca.pem), temp_file("ca-key.pem", &ca.key_pem)),
        ca_pem: ca.pem,
    }
}

fn config(up: SocketAddr, pki: &Pki, with_issuer: bool) -> String {
    let issuer = if with_issuer {
        format!(
            ", fault_issuer: {{ cert_file: {:?}, key_file: {:?} }}",
            pki.issuer.0.display().to_string(),
            pki.issuer.1.display().to_string()
        )
    } else {
        String::new()
    };
    format!(
        "listeners:\n  - name: secure\n    bind: 127.0.0.1:0\n    tls: {{ cert_file: {:?}, key_file: {:?}{issuer} }}\n    routes: [{{ name: app, upstream: \"http://{up}\" }}]\n  - name: plain\n    bind: 127.0.0.1:0\n    routes: [{{ name: other, upstream: \"http://{up}\" }}]\ncontrol: {{ bind: \"127.0.0.1:0\" }}\nadmin: {{ bind: \"127.0.0.1:0\" }}\n",
        pki.server.0.display().to_string(),
        pki.server.1.display().to_string()
    )
}

/// Connects, sends one request and returns its status; an error names what failed, from the rustls error
/// when there is one ("AlertReceived(HandshakeFailure)", "InvalidCertificate(Expired…)").
async fn request(addr: SocketAddr, ca: &str, name: &str) -> Result<StatusCode, String> {
    let mut sender = tls_client(addr, ca, name, false).await.map_err(|e| describe(&*e))?;
    let resp = sender
        .send_request(Request::get("/").header("host", name).body(body(Bytes::new())).expect("req"))
        .await
        .map_err(|e| e.to_string())?;
    Ok(resp.status())
}

fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    if let Some(io) = e.downcast_ref::<std::io::Error>() {
        if let Some(tls) = io.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
            return format!("{tls:?}");
        }
        return format!("io {:?}: {io}", io.kind());
    }
    e.to_string()
}

#[tokio::test]
async fn alerts_and_resets_end_the_handshake_and_the_experiment_ends_them() {
    let up = upstream().await;
    let pki = pki();
    let proxy = proxy_yaml(&config(up, &pki, false)).await;
    assert_eq!(request(proxy.addr, &pki.ca_pem, "localhost").await, Ok(StatusCode::OK));

    let e = proxy
        .start("name: refuse\nmatch: { listeners: [secure] }\nfaults: [{ tls: { handshake_failure: {} } }]\n")
        .await;
    let err = request(proxy.addr, &pki.ca_pem, "localhost").await.expect_err("refused");
    assert_eq!(err, "AlertReceived(HandshakeFailure)");
    proxy.stop(&e.id).await;

    let e = proxy.start("name: broken\nfaults: [{ tls: { handshake_failure: { alert: internal_error } } }]\n").await;
    let err = request(proxy.addr, &pki.ca_pem, "localhost").await.expect_err("refused");
    assert_eq!(err, "AlertReceived(InternalError)");
    proxy.stop(&e.id).await;

    let e = proxy.start("name: rst\nfaults: [{ tls: { handshake_failure: { reset: true } } }]\n").await;
    let err = request(proxy.addr, &pki.ca_pem, "localhost").await.expect_err("reset");
    assert!(err.contains("ConnectionReset"), "{err}");
    let mut control = proxy.control().await;
    let stats = control.get_stats(v1::GetStatsRequest { experiment_id: e.id.clone() }).await.expect("stats");
    let x = &stats.into_inner().experiments[0];
    assert_eq!(x.injected_by_kind.get("tls"), Some(&1), "{x:?}");
    assert_eq!(x.stats.as_ref().map(|s| (s.matched, s.injected)), Some((1, 1)), "{x:?}");
    proxy.stop(&e.id).await;

    assert_eq!(request(proxy.addr, &pki.ca_pem, "localhost").await, Ok(StatusCode::OK), "stopped: served again");
    let admin = proxy.server.admin_addr().expect("admin");
    let text =
        String::from_utf8(get(&client(), &format!("http://{admin}/metrics")).await.body.to_vec()).expect("utf-8");
    assert!(text.contains("edgefault_tls_handshakes_total{listener=\"secure\",outcome=\"injected\"} 3"), "{text}");
    assert!(text.contains("edgefault_tls_handshakes_total{listener=\"secure\",outcome=\"ok\"} 2"), "{text}");
}

#[tokio::test]
async fn bad_certificates_are_refused_by_the_client_for_their_own_reason() {
    let up = upstream().await;
    let pki = pki();
    let proxy = proxy_yaml(&config(up, &pki, true)).await;
    let cases = [
        ("expired", "", "Expired"),
        ("not_yet_valid", "", "NotValidYet"),
        ("wrong_name", "", "NotValidForName"),
        ("wrong_name", ", name: other.example.org", "NotValidForName"),
        ("self_signed", "", "UnknownIssuer"),
    ];
    for (problem, extra, expected) in cases {
        let e = proxy
            .start(&format!(
                "name: cert-{problem}\nmatch: {{ listeners: [secure] }}\nfaults: [{{ tls: {{ certificate: {{ problem: {problem}{extra} }} }} }}]\n"
            ))
            .await;
        for name in ["localhost", "shop.example.test"] {
            let err = request(proxy.addr, &pki.ca_pem, name).await.expect_err("certificate refused");
            assert!(err.starts_with("InvalidCertificate(") && err.contains(expected), "{problem} for {name}: {err}");
        }
        proxy.stop(&e.id).await;
    }
    assert_eq!(request(proxy.addr, &pki.ca_pem, "shop.example.test").await, Ok(StatusCode::OK));

    // Without a fault issuer the certificate is self-signed: rustls still reports the expiry first.
    let plain = proxy_yaml(&config(up, &pki, false)).await;
    plain.start("name: expired\nfaults: [{ tls: { certificate: { problem: expired } } }]\n").await;
    let err = request(plain.addr, &pki.ca_pem, "localhost").await.expect_err("refused");
    assert!(err.contains("Expired"), "{err}");
}

#[tokio::test]
async fn the_sni_name_and_the_share_of_clients_choose_the_faulted_handshakes() {
    let up = upstream().await;
    let pki = pki();
    let proxy = proxy_yaml(&config(up, &pki, true)).await;
    proxy
        .start("name: shop-only\nmatch: { hosts: [\"shop.example.test\"] }\nfaults: [{ tls: { handshake_failure: {} } }]\n")
        .await;
    assert!(request(proxy.addr, &pki.ca_pem, "shop.example.test").await.is_err());
    assert_eq!(request(proxy.addr, &pki.ca_pem, "api.example.test").await, Ok(StatusCode::OK));
    assert_eq!(request(proxy.addr, &pki.ca_pem, "localhost").await, Ok(StatusCode::OK));

    // 50 % of connections, seeded: between 60 and 140 of 200 fail (off by chance far less than once in 10^8).
    proxy.start("name: half\nmatch: { hosts: [\"*.example.test\"] }\npercentage: 50\nseed: 7\nfaults: [{ tls: { certificate: { problem: expired } } }]\n").await;
    let mut refused = 0;
    for _ in 0..200 {
        if request(proxy.addr, &pki.ca_pem, "api.example.test").await.is_err() {
            refused += 1;
        }
    }
    assert!((60..=140).contains(&refused), "{refused} of 200 refused");
}

#[tokio::test]
async fn a_stall_holds_the_handshake_then_lets_it_go_on() {
    let up = upstream().await;
    let pki = pki();
    let proxy = proxy_yaml(&config(up, &pki, true)).await;

    let e = proxy.start("name: slow\nfaults: [{ tls: { stall: { duration: 400ms } } }]\n").await;
    let started = Instant::now();
    assert_eq!(request(proxy.addr, &pki.ca_pem, "localhost").await, Ok(StatusCode::OK));
    assert!(started.elapsed() >= Duration::from_millis(400), "{:?}", started.elapsed());
    proxy.stop(&e.id).await;

    // Without a duration: until the experiment stops. A client with a 1 s budget gives up.
    let e = proxy.start("name: stuck\nfaults: [{ tls: { stall: {} } }]\n").await;
    let gave_up = tokio::time::timeout(Duration::from_secs(1), request(proxy.addr, &pki.ca_pem, "localhost")).await;
    assert!(gave_up.is_err(), "the handshake should still be stalled: {gave_up:?}");
    // A client still waiting when the experiment stops completes its handshake.
    let waiting = tokio::spawn({
        let (addr, ca) = (proxy.addr, pki.ca_pem.clone());
        async move { request(addr, &ca, "localhost").await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished());
    proxy.stop(&e.id).await;
    let done = tokio::time::timeout(Duration::from_secs(5), waiting).await.expect("released").expect("task");
    assert_eq!(done, Ok(StatusCode::OK));

    // A stall, then an alert.
    proxy
        .start("name: slow-fail\nfaults: [{ tls: { stall: { duration: 200ms } } }, { tls: { handshake_failure: { alert: unrecognized_name } } }]\n")
        .await;
    let started = Instant::now();
    let err = request(proxy.addr, &pki.ca_pem, "localhost").await.expect_err("refused");
    assert_eq!(err, "AlertReceived(UnrecognisedName)");
    assert!(started.elapsed() >= Duration::from_millis(200));
}

/// A stalled handshake takes a slot of `limits.max_active_faults` for as long as it is held; with every
/// slot taken, the next handshake goes on untouched.
#[tokio::test]
async fn stalls_are_bounded_by_the_fault_cap() {
    let up = upstream().await;
    let pki = pki();
    let yaml = config(up, &pki, true) + "limits: { max_active_faults: 1 }\n";
    let proxy = proxy_yaml(&yaml).await;
    let e = proxy.start("name: stuck\nfaults: [{ tls: { stall: {} } }]\n").await;
    let held = tokio::spawn({
        let (addr, ca) = (proxy.addr, pki.ca_pem.clone());
        async move { request(addr, &ca, "localhost").await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!held.is_finished(), "the first handshake is stalled");
    // The one slot is taken: this handshake is not stalled.
    let passed = tokio::time::timeout(Duration::from_secs(5), request(proxy.addr, &pki.ca_pem, "localhost")).await;
    assert_eq!(passed.expect("not stalled"), Ok(StatusCode::OK));
    proxy.stop(&e.id).await;
    let done = tokio::time::timeout(Duration::from_secs(5), held).await.expect("released").expect("task");
    assert_eq!(done, Ok(StatusCode::OK));
    let admin = proxy.server.admin_addr().expect("admin");
    let text =
        String::from_utf8(get(&client(), &format!("http://{admin}/metrics")).await.body.to_vec()).expect("utf-8");
    assert!(text.contains("edgefault_faults_overflow_total 1"), "{text}");
}

#[tokio::test]
async fn tls_faults_are_refused_where_they_cannot_act() {
    let up = upstream().await;
    let pki = pki();
    let proxy = proxy_yaml(&config(up, &pki, false)).await;
    let cases: [(&str, &[&str]); 9] = [
        ("faults: [{ tls: {} }]", &["faults[0].tls"]),
        ("faults: [{ tls: { handshake_failure: { alert: bad_mac } } }]", &["faults[0].tls.handshake_failure.alert"]),
        (
            "faults: [{ tls: { handshake_failure: { alert: internal_error, reset: true } } }]",
            &["faults[0].tls.handshake_failure.alert"],
        ),
        ("faults: [{ tls: { certificate: {} } }]", &["faults[0].tls.certificate.problem"]),
        ("faults: [{ tls: { certificate: { problem: expired, name: a.test } } }]", &["faults[0].tls.certificate.name"]),
        ("faults: [{ tls: { certificate: { problem: wrong_name, name: \"not a name\" } } }]", &["faults[0].tls.certificate.name"]),
        ("faults: [{ tls: { stall: { duration: 0s } } }]", &["faults[0].tls.stall.duration"]),
        (
            "match: { listeners: [plain], routes: [app], path_prefix: /x }\nfaults: [{ tls: { stall: {} } }, { abort: { http_status: 500 } }]",
            &["faults[1]", "match.routes", "match.path_prefix", "match.listeners[0]"],
        ),
        (
            "faults: [{ tls: { handshake_failure: {} } }, { tls: { stall: {} } }]",
            &["faults[1]"],
        ),
    ];
    for (body, expected) in cases {
        let fields = violation_fields(&proxy, &format!("name: bad\n{body}\n")).await;
        for field in expected {
            assert!(fields.iter().any(|f| f == field), "{body}: expected {field} in {fields:?}");
        }
    }

    // A server without a TLS listener has nothing to apply them to.
    let plain = proxy_yaml(&format!(
        "listeners:\n  - {{ name: web, bind: \"127.0.0.1:0\", routes: [{{ name: default, upstream: \"http://{up}\" }}] }}\ncontrol: {{ bind: \"127.0.0.1:0\" }}\n"
    ))
    .await;
    let fields = violation_fields(&plain, "name: bad\nfaults: [{ tls: { stall: {} } }]\n").await;
    assert_eq!(fields, vec!["faults[0].tls"]);
}

#[test]
fn a_fault_issuer_that_cannot_sign_is_refused_with_its_place() {
    let pki = pki();
    let (_, server_key) = &pki.server;
    let cases = [
        // The server certificate is not a CA.
        (pki.server.0.clone(), server_key.clone(), "listeners[0].tls.fault_issuer.cert_file"),
        // The CA with another key.
        (pki.issuer.0.clone(), server_key.clone(), "listeners[0].tls.fault_issuer.key_file"),
    ];
    for (cert, key, expected) in cases {
        let yaml = format!(
            "listeners:\n  - name: web\n    bind: 127.0.0.1:0\n    tls: {{ cert_file: {:?}, key_file: {:?}, fault_issuer: {{ cert_file: {:?}, key_file: {:?} }} }}\n    routes: [{{ name: a, upstream: \"http://127.0.0.1:1\" }}]\n",
            pki.server.0.display().to_string(),
            pki.server.1.display().to_string(),
            cert.display().to_string(),
            key.display().to_string()
        );
        let e = edgefault::config::Config::from_yaml(&yaml, "t.yaml", &edgefault::config::Overrides::default())
            .expect_err("refused");
        assert!(e.to_string().contains(expected), "expected {expected:?} in:\n{e}");
    }
}
