//! TLS on the control port: HTTP/2 only, the certificate from [`CertFiles`] (reloaded when its files
//! change), and with a client CA, mutual TLS. Handshakes run on tasks of their own, so a slow client never
//! holds up the accept loop; the streams that complete are handed to tonic, which reads the client's
//! certificate from them ([`tonic::Request::peer_certs`]).

use std::{fmt, net::SocketAddr, path::Path, sync::Arc, time::Duration};

use rustls::{pki_types::CertificateDer, server::WebPkiClientVerifier, RootCertStore, ServerConfig};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use tokio_rustls::{server::TlsStream, TlsAcceptor};
use tokio_stream::wrappers::ReceiverStream;

use crate::tls::{read_certificates, CertFiles, TlsSetupError};

/// Longest wait for a client's handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Completed handshakes waiting for tonic to take them.
const QUEUE: usize = 64;

/// TLS on the control port, read and checked when the config loads. The certificate pair is reloaded when
/// its files change, as a listener's is; the client CA is read once.
#[derive(Clone)]
pub struct ControlTls {
    pub files: Arc<CertFiles>,
    /// Serves `files`; with a client CA, asks every client for a certificate it signed.
    pub server: Arc<rustls::ServerConfig>,
    pub mtls: bool,
}

impl fmt::Debug for ControlTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ControlTls").field("files", &self.files).field("mtls", &self.mtls).finish()
    }
}

impl ControlTls {
    /// `control.tls`: every file readable and holding what it should, the key the certificate's. Problems are
    /// reported with their field under `control.tls`.
    pub fn load(
        cert_file: &Path,
        key_file: &Path,
        client_ca_file: Option<&Path>,
        problems: &mut Vec<String>,
    ) -> Option<ControlTls> {
        use rustls::pki_types::{pem::PemObject, PrivateKeyDer};
        let before = problems.len();
        if let Err(e) = read_certificates(cert_file) {
            problems.push(format!("control.tls.cert_file: {e}"));
        }
        match std::fs::read(key_file) {
            Ok(pem) if PrivateKeyDer::from_pem_slice(&pem).is_ok() => {}
            Ok(_) => problems.push(format!("control.tls.key_file: {} holds no PEM private key", key_file.display())),
            Err(e) => problems.push(format!("control.tls.key_file: cannot read {}: {e}", key_file.display())),
        }
        let client_cas = match client_ca_file.map(read_certificates) {
            None => None,
            Some(Ok(cas)) => Some(cas),
            Some(Err(e)) => {
                problems.push(format!("control.tls.client_ca_file: {e}"));
                None
            }
        };
        if problems.len() > before {
            return None;
        }
        let files = match CertFiles::load(cert_file, key_file) {
            Ok(files) => files,
            Err(e) => {
                let field = if matches!(e, TlsSetupError::BadKey { .. }) { "key_file" } else { "cert_file" };
                problems.push(format!("control.tls.{field}: {e}"));
                return None;
            }
        };
        match server_config(&files, client_cas.as_deref()) {
            Ok(server) => Some(ControlTls { files: Arc::new(files), server, mtls: client_cas.is_some() }),
            Err(e) => {
                let field = if client_cas.is_some() { "client_ca_file" } else { "cert_file" };
                problems.push(format!("control.tls.{field}: {e}"));
                None
            }
        }
    }
}

/// The server side of the control port's TLS. `client_cas`: the CAs whose certificates clients must
/// present (mTLS); `None`: no client certificate asked for. An error says what is wrong with the CAs.
pub fn server_config(
    files: &CertFiles,
    client_cas: Option<&[CertificateDer<'static>]>,
) -> Result<Arc<ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match client_cas {
        None => builder.with_no_client_auth(),
        Some(cas) => {
            let mut roots = RootCertStore::empty();
            for (i, ca) in cas.iter().enumerate() {
                roots.add(ca.clone()).map_err(|e| format!("certificate {i} is not a usable CA: {e}"))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| e.to_string())?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(files.resolver());
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Accepts connections on `listener` and yields those whose handshake completed, until the stream is
/// dropped (tonic drops it when the server stops).
pub fn incoming(
    listener: TcpListener,
    config: Arc<ServerConfig>,
) -> ReceiverStream<Result<TlsStream<TcpStream>, std::io::Error>> {
    let (tx, rx) = mpsc::channel(QUEUE);
    let acceptor = TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = tx.closed() => return,
            };
            match accepted {
                Ok((tcp, peer)) => {
                    tokio::spawn(handshake(acceptor.clone(), tcp, peer, tx.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(error = %e, "control port: accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    });
    ReceiverStream::new(rx)
}

async fn handshake(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
    tx: mpsc::Sender<Result<TlsStream<TcpStream>, std::io::Error>>,
) {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => {
            let _ = tx.send(Ok(stream)).await;
        }
        // Logged here, not passed on: a client's failed handshake is no error of the server.
        Ok(Err(e)) => tracing::info!(%peer, error = %e, "control port: TLS handshake refused"),
        Err(_) => tracing::info!(%peer, "control port: TLS handshake timed out"),
    }
}
