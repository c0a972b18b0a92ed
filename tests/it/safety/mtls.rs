//! TLS and mTLS on the control port: a client without a certificate the CA signed is refused at the
//! handshake, one with it is admitted and named by its certificate's subject in the audit log; an
//! off-loopback control port may rely on mTLS instead of tokens.

use crate::support::*;
use edgefault::{
    app::Server,
    config::{Config, Overrides},
    pb::v1::{self as v1, fault_control_client::FaultControlClient},
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

struct Pki {
    ca_pem: String,
    server: (String, String),
    client: (String, String),
    stranger: (String, String),
}

/// A CA, a server certificate for localhost, a client certificate "CN=ops-bot" it signed, and a client
/// certificate from another CA.
fn pki() -> Pki {
    let pems = |(cert, key): (rcgen::Certificate, rcgen::KeyPair)| (cert.pem(), key.serialize_pem());
    let ca = TestCa::new("control CA");
    let server = pems(ca.sign(&["localhost"], Some("edgefault")));
    let client = pems(ca.sign(&[], Some("ops-bot")));
    let stranger = pems(TestCa::new("another CA").sign(&[], Some("stranger")));
    Pki { ca_pem: ca.pem, server, client, stranger }
}

/// The server, and the files of its certificate and key.
async fn mtls_server(pki: &Pki, audit: &std::path::Path) -> (Server, std::path::PathBuf, std::path::PathBuf) {
    let dir_ca = temp_file("ca.pem", &pki.ca_pem);
    let cert = temp_file("server.pem", &pki.server.0);
    let key = temp_file("server.key", &pki.server.1);
    let up = upstream().await;
    let yaml = format!(
        "listeners:\n  - name: web\n    bind: 127.0.0.1:0\n    routes: [{{ name: default, upstream: \"http://{up}\" }}]\ncontrol:\n  bind: 127.0.0.1:0\n  tls: {{ cert_file: {:?}, key_file: {:?}, client_ca_file: {:?} }}\naudit: {{ path: {:?} }}\n",
        cert.display().to_string(),
        key.display().to_string(),
        dir_ca.display().to_string(),
        audit.display().to_string()
    );
    let config = Config::from_yaml(&yaml, "test", &Overrides::default()).expect("config");
    (Server::start(config).await.expect("server"), cert, key)
}

async fn client(
    server: &Server,
    pki: &Pki,
    identity: Option<&(String, String)>,
) -> Result<FaultControlClient<Channel>, String> {
    client_trusting(server, &pki.ca_pem, identity).await
}

/// A client that trusts `server_ca` for the server's certificate.
async fn client_trusting(
    server: &Server,
    server_ca: &str,
    identity: Option<&(String, String)>,
) -> Result<FaultControlClient<Channel>, String> {
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(server_ca)).domain_name("localhost");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    let channel = Channel::from_shared(format!("https://localhost:{}", server.control_addr().port()))
        .map_err(|e| e.to_string())?
        .tls_config(tls)
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok(FaultControlClient::new(channel))
}

#[tokio::test]
async fn mtls_admits_the_ca_s_clients_and_names_them_in_the_audit_log() {
    let pki = pki();
    let audit = temp_file("audit.jsonl", "");
    let (server, _, _) = mtls_server(&pki, &audit).await;

    let mut c = client(&server, &pki, Some(&pki.client)).await.expect("a client the CA signed connects");
    c.start_experiment(v1::StartExperimentRequest {
        spec: Some(spec("name: x\nfaults: [{ abort: { http_status: 503 } }]\n")),
    })
    .await
    .expect("started over mTLS");
    let log = std::fs::read_to_string(&audit).expect("audit log");
    assert!(log.contains("cert:CN=ops-bot"), "caller named by its certificate: {log}");

    for (who, identity) in [("no certificate", None), ("another CA's certificate", Some(&pki.stranger))] {
        let refused = match client(&server, &pki, identity).await {
            Err(_) => true,
            Ok(mut c) => c.list_experiments(v1::ListExperimentsRequest::default()).await.is_err(),
        };
        assert!(refused, "{who} must be refused");
    }
}

/// A renewed control certificate (here from another CA) is served to new connections within a few checks,
/// with the running experiments untouched; a half-written pair keeps the old one.
#[tokio::test]
async fn a_renewed_control_certificate_is_served_without_a_restart() {
    let (pki, renewed) = (pki(), pki());
    let audit = temp_file("audit.jsonl", "");
    let (server, cert, key) = mtls_server(&pki, &audit).await;
    let mut c = client(&server, &pki, Some(&pki.client)).await.expect("connects");
    c.start_experiment(v1::StartExperimentRequest {
        spec: Some(spec("name: kept\nfaults: [{ abort: { http_status: 503 } }]\n")),
    })
    .await
    .expect("started");

    // The certificate without its key: refused, the old pair is still served.
    std::fs::write(&cert, &renewed.server.0).expect("write cert");
    tokio::time::sleep(edgefault::tls::cert_files::RELOAD_CHECK * 2).await;
    assert!(client(&server, &pki, Some(&pki.client)).await.is_ok(), "the previous certificate is still served");

    std::fs::write(&key, &renewed.server.1).expect("write key");
    let deadline = std::time::Instant::now() + edgefault::tls::cert_files::RELOAD_CHECK * 5;
    let mut c = loop {
        // The client still proves itself with the first CA's certificate (the client CA is unchanged).
        if let Ok(c) = client_trusting(&server, &renewed.ca_pem, Some(&pki.client)).await {
            break c;
        }
        assert!(std::time::Instant::now() < deadline, "renewed certificate never served");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let listed = c.list_experiments(v1::ListExperimentsRequest::default()).await.expect("list").into_inner();
    assert!(listed.experiments.iter().any(|e| e.spec.as_ref().is_some_and(|s| s.name == "kept")), "{listed:?}");
    assert!(client(&server, &pki, Some(&pki.client)).await.is_err(), "the old CA no longer verifies the server");
}

// The server runs on the test's runtime while `ctl` runs as a blocking child process: two workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_speaks_mtls() {
    let pki = pki();
    let audit = temp_file("audit.jsonl", "");
    let (server, _, _) = mtls_server(&pki, &audit).await;
    let ca = temp_file("ca.pem", &pki.ca_pem);
    let cert = temp_file("client.pem", &pki.client.0);
    let key = temp_file("client.key", &pki.client.1);
    let url = format!("https://localhost:{}", server.control_addr().port());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_edgefault"))
        .args(["ctl", "--control", &url, "--tls-ca", &ca.display().to_string(), "--tls-cert"])
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .arg("list")
        .output()
        .expect("run ctl");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_edgefault"))
        .args(["ctl", "--control", &url, "--tls-ca", &ca.display().to_string(), "list"])
        .output()
        .expect("run ctl");
    assert!(!out.status.success(), "no client certificate: refused");
}

#[test]
fn off_loopback_control_is_allowed_with_mtls_and_refused_without_auth() {
    let pki = pki();
    let ca = temp_file("ca.pem", &pki.ca_pem);
    let cert = temp_file("server.pem", &pki.server.0);
    let key = temp_file("server.key", &pki.server.1);
    let base = "listeners:\n  - name: web\n    bind: 127.0.0.1:0\n    routes: [{ name: default, upstream: \"http://127.0.0.1:1\" }]\n";
    let with_mtls = format!(
        "{base}control:\n  bind: 0.0.0.0:7070\n  tls: {{ cert_file: {:?}, key_file: {:?}, client_ca_file: {:?} }}\n",
        cert.display().to_string(),
        key.display().to_string(),
        ca.display().to_string()
    );
    Config::from_yaml(&with_mtls, "t", &Overrides::default()).expect("mTLS stands in for tokens");
    let tls_only = format!(
        "{base}control:\n  bind: 0.0.0.0:7070\n  tls: {{ cert_file: {:?}, key_file: {:?} }}\n",
        cert.display().to_string(),
        key.display().to_string()
    );
    let e = Config::from_yaml(&tls_only, "t", &Overrides::default()).expect_err("TLS alone authenticates no one");
    assert!(e.to_string().contains("no token and no mTLS"), "{e}");
    let bad = format!(
        "{base}control:\n  tls: {{ cert_file: {:?}, key_file: {:?} }}\n",
        key.display().to_string(),
        cert.display().to_string()
    );
    let e = Config::from_yaml(&bad, "t", &Overrides::default()).expect_err("swapped files");
    assert!(e.to_string().contains("control.tls.cert_file") && e.to_string().contains("control.tls.key_file"), "{e}");
}
