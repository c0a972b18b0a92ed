//! TLS on a listener: certificate and key from PEM files ([`CertFiles`], reloaded when they change),
//! HTTP/1.1 and HTTP/2 offered by ALPN.
//!
//! Every handshake starts by reading the client's ClientHello; when TLS faults are running on the listener
//! the experiments decide then, from the name the client asked for (SNI) and its address, whether the
//! handshake stalls, is refused with an alert or a reset, or goes on with a certificate the client should
//! refuse (made here, for that name, expired, not yet valid, for another name or self-signed).

use std::{
    collections::HashMap,
    fmt, io,
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use rcgen::{CertificateParams, DnType, Issuer, KeyPair, PublicKeyData};
use rustls::{
    crypto::{ring::sign::any_supported_type, CryptoProvider},
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
    server::{Acceptor, ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
    ServerConfig,
};
use tokio::io::AsyncWriteExt;
use tokio_rustls::{server::TlsStream, LazyConfigAcceptor, StartHandshake};

use super::conn::{ResetOnDrop, ResetSwitch};
pub use crate::tls::cert_files::RELOAD_CHECK;
use crate::{
    experiment::{Held, TlsDecision},
    fault::{CertificateProblem, TlsFault},
    telemetry::metrics::HandshakeOutcome,
    tls::{read_certificates, CertFiles, TlsSetupError},
};

/// Longest wait for each half of a client's TLS handshake (its ClientHello; the rest), a stall aside.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Fault certificates kept for reuse, by problem and name; past it, the cache starts over.
const FAULT_CACHE: usize = 1024;
/// How long a fault certificate is reused. Its dates are relative to when it was made (expired yesterday,
/// valid from tomorrow, valid for 30 days), so it is made again well before they could drift into another
/// problem.
const FAULT_CERT_REUSE: Duration = Duration::from_secs(60 * 60);

/// Serves one certificate (a fault's).
#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

/// The TLS side of a listener.
pub struct ListenerTls {
    files: Arc<CertFiles>,
    config: Arc<ServerConfig>,
    provider: Arc<CryptoProvider>,
    faults: FaultCertificates,
}

/// A fault certificate's problem and the name it is for.
type FaultKey = (CertificateProblem, Box<str>);

/// What fault certificates are made with: one key per listener, and the CA that signs them when the config
/// names one (`tls.fault_issuer`).
struct FaultCertificates {
    key: KeyPair,
    /// The issuer's certificate (sent after the fault's, as an intermediate would be) and its signer.
    issuer: Option<(CertificateDer<'static>, Issuer<'static, KeyPair>)>,
    /// Each with when it was made.
    made: Mutex<HashMap<FaultKey, (tokio::time::Instant, Arc<ServerConfig>)>>,
}

/// How a handshake ended when it did not complete.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("TLS handshake failed: {0}")]
    Failed(io::Error),
    #[error("TLS handshake timed out")]
    TimedOut,
    #[error("the client left during the stalled handshake")]
    LeftDuringStall,
    #[error("TLS handshake ended by experiment {experiment} ({fault})")]
    Injected { experiment: Arc<str>, fault: &'static str },
    #[error("the fault certificate could not be made: {0}")]
    FaultCertificate(String),
}

/// One handshake's result, and whether a TLS fault acted on it.
pub struct Handshake {
    pub result: Result<TlsStream<ResetOnDrop>, HandshakeError>,
    pub injected: bool,
}

impl Handshake {
    /// What the handshake counters record of it.
    pub fn outcome(&self) -> HandshakeOutcome {
        match &self.result {
            _ if self.injected => HandshakeOutcome::Injected,
            Ok(_) => HandshakeOutcome::Ok,
            Err(HandshakeError::TimedOut) => HandshakeOutcome::TimedOut,
            Err(_) => HandshakeOutcome::Failed,
        }
    }
}

impl fmt::Debug for ListenerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListenerTls").field("files", &self.files).finish_non_exhaustive()
    }
}

/// The listener's TLS configuration around `resolver`: safe defaults, no client certificates, HTTP/2 and
/// HTTP/1.1 offered.
fn server_config(
    provider: &Arc<CryptoProvider>,
    resolver: Arc<dyn ResolvesServerCert>,
) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let mut config = ServerConfig::builder_with_provider(Arc::clone(provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError::System(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The rest of a handshake whose ClientHello is in.
async fn complete(
    start: StartHandshake<ResetOnDrop>,
    config: Arc<ServerConfig>,
) -> Result<TlsStream<ResetOnDrop>, HandshakeError> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, start.into_stream(config)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(HandshakeError::Failed(e)),
        Err(_) => Err(HandshakeError::TimedOut),
    }
}

/// Holds a handshake for the stalls of the experiments still running (an experiment that ends takes its
/// share with it), without reading what the client sends. `false` when the client closed the connection
/// meanwhile.
async fn stall(io: &ResetOnDrop, mut held: Held<Duration>) -> bool {
    let since = tokio::time::Instant::now();
    let mut byte = [0u8; 1];
    // Until the client sends something: then only the clock and the experiments are watched.
    let mut watch_client = true;
    loop {
        let total = held.fold(Duration::ZERO, Duration::saturating_add);
        if total.is_zero() {
            return true;
        }
        let ended = held.any_ended();
        tokio::select! {
            () = tokio::time::sleep_until(since + total) => return true,
            () = ended => {
                held.prune();
            }
            peeked = io.peek(&mut byte), if watch_client => match peeked {
                // Closed or broken: nobody is waiting any more.
                Ok(0) | Err(_) => return false,
                // The client sent more (it should not before the server's answer): it stays unread.
                Ok(_) => watch_client = false,
            },
        }
    }
}

/// The first DNS name (or address) a certificate is for.
fn first_name(chain: &[CertificateDer<'static>]) -> Option<Box<str>> {
    let (_, cert) = x509_parser::parse_x509_certificate(chain.first()?).ok()?;
    let names = cert.subject_alternative_name().ok()??;
    names.value.general_names.iter().find_map(|n| match n {
        x509_parser::extensions::GeneralName::DNSName(d) => Some((*d).into()),
        x509_parser::extensions::GeneralName::IPAddress(ip) => match ip.len() {
            4 => <[u8; 4]>::try_from(*ip).ok().map(|a| std::net::Ipv4Addr::from(a).to_string().into()),
            16 => <[u8; 16]>::try_from(*ip).ok().map(|a| std::net::Ipv6Addr::from(a).to_string().into()),
            _ => None,
        },
        _ => None,
    })
}

impl FaultCertificates {
    /// A certificate with `problem` for `name`, signed by the issuer (unless self-signed is the problem).
    fn make(&self, problem: &CertificateProblem, name: &str) -> Result<CertifiedKey, String> {
        const DAY: i64 = 24 * 60 * 60;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
        let (from, to) = match problem {
            CertificateProblem::Expired => (now - 90 * DAY, now - DAY),
            CertificateProblem::NotYetValid => (now + DAY, now + 91 * DAY),
            CertificateProblem::WrongName(_) | CertificateProblem::SelfSigned => (now - DAY, now + 30 * DAY),
        };
        let at = |t: i64| time::OffsetDateTime::from_unix_timestamp(t).map_err(|e| e.to_string());
        let mut params = CertificateParams::new(vec![name.to_owned()]).map_err(|e| e.to_string())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.not_before = at(from)?;
        params.not_after = at(to)?;
        let mut chain = Vec::with_capacity(2);
        match &self.issuer {
            Some((issuer_cert, issuer)) if *problem != CertificateProblem::SelfSigned => {
                chain.push(params.signed_by(&self.key, issuer).map_err(|e| e.to_string())?.der().clone());
                chain.push(issuer_cert.clone());
            }
            _ => chain.push(params.self_signed(&self.key).map_err(|e| e.to_string())?.der().clone()),
        }
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.serialize_der()));
        let signing = any_supported_type(&der).map_err(|e| e.to_string())?;
        Ok(CertifiedKey::new(chain, signing))
    }
}

impl ListenerTls {
    pub fn new(cert_file: &Path, key_file: &Path) -> Result<ListenerTls, TlsSetupError> {
        let files = Arc::new(CertFiles::load(cert_file, key_file)?);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = server_config(&provider, files.resolver())?;
        let key =
            KeyPair::generate().map_err(|e| TlsSetupError::System(format!("no key for fault certificates: {e}")))?;
        Ok(ListenerTls {
            files,
            config,
            provider,
            faults: FaultCertificates { key, issuer: None, made: Mutex::default() },
        })
    }

    /// Signs fault certificates with this CA (`tls.fault_issuer`) rather than with themselves, so clients
    /// that trust it report exactly the fault's problem (expired, wrong name) and not an unknown issuer.
    pub fn with_fault_issuer(mut self, cert_file: &Path, key_file: &Path) -> Result<ListenerTls, TlsSetupError> {
        let cert = read_certificates(cert_file)?.swap_remove(0);
        let pem = std::fs::read_to_string(key_file)
            .map_err(|source| TlsSetupError::Read { path: key_file.to_owned(), source })?;
        let bad_key = |message: String| TlsSetupError::BadKey { path: key_file.to_owned(), message };
        let key = KeyPair::from_pem(&pem).map_err(|e| bad_key(format!("{e} (a PKCS#8 PEM key is needed)")))?;
        let bad_cert = |message: String| TlsSetupError::BadIssuer { path: cert_file.to_owned(), message };
        let (_, parsed) = x509_parser::parse_x509_certificate(&cert).map_err(|e| bad_cert(e.to_string()))?;
        if !parsed.is_ca() {
            return Err(bad_cert("not a CA certificate (basicConstraints CA:TRUE): it cannot sign others".into()));
        }
        if parsed.public_key().subject_public_key.data.as_ref() != key.der_bytes() {
            return Err(bad_key(format!("it is not the key of {}", cert_file.display())));
        }
        let issuer = Issuer::from_ca_cert_der(&cert, key).map_err(|e| bad_cert(e.to_string()))?;
        self.faults.issuer = Some((cert, issuer));
        Ok(self)
    }

    /// Runs the handshake of a new connection. `decide` is asked, once the ClientHello is in, what the TLS
    /// faults do to it, given the name the client asked for, with a guard kept until the fault has acted
    /// (a slot of the fault cap); `switch` resets the connection for a reset. A stall, and the fault after
    /// it, end with their experiment.
    pub async fn handshake<G>(
        &self,
        stream: ResetOnDrop,
        switch: &ResetSwitch,
        decide: impl FnOnce(Option<&str>) -> Option<(TlsDecision, G)>,
    ) -> Handshake {
        let hello = tokio::time::timeout(HANDSHAKE_TIMEOUT, LazyConfigAcceptor::new(Acceptor::default(), stream));
        let start = match hello.await {
            Ok(Ok(start)) => start,
            Ok(Err(e)) => return Handshake { result: Err(HandshakeError::Failed(e)), injected: false },
            Err(_) => return Handshake { result: Err(HandshakeError::TimedOut), injected: false },
        };
        let sni = start.client_hello().server_name().map(str::to_owned);
        let Some((decision, guard)) = decide(sni.as_deref()) else {
            return Handshake { result: complete(start, Arc::clone(&self.config)).await, injected: false };
        };
        let result = self.fault(start, sni.as_deref(), decision, switch).await;
        drop(guard);
        Handshake { result, injected: true }
    }

    async fn fault(
        &self,
        mut start: StartHandshake<ResetOnDrop>,
        sni: Option<&str>,
        decision: TlsDecision,
        switch: &ResetSwitch,
    ) -> Result<TlsStream<ResetOnDrop>, HandshakeError> {
        if !decision.stall.is_empty() && !stall(&start.io, decision.stall).await {
            return Err(HandshakeError::LeftDuringStall);
        }
        let end = decision.end.filter(|(_, _, lifeline)| !lifeline.is_ended());
        let Some((experiment, end, _)) = end else {
            return complete(start, Arc::clone(&self.config)).await;
        };
        let injected = |fault| HandshakeError::Injected { experiment: Arc::clone(&experiment), fault };
        match end {
            TlsFault::Alert(alert) => {
                // Best effort: a client already gone has nothing to read.
                let _ = start.io.write_all(&alert.record()).await;
                let _ = start.io.shutdown().await;
                Err(injected("alert"))
            }
            TlsFault::Reset => {
                switch.turn_on();
                Err(injected("reset"))
            }
            TlsFault::Certificate(problem) => {
                let config = self.fault_config(&problem, sni).map_err(HandshakeError::FaultCertificate)?;
                // A client that does not check certificates goes on over it, as it would with the edge's.
                complete(start, config).await
            }
            TlsFault::Stall(_) => complete(start, Arc::clone(&self.config)).await,
        }
    }

    /// The configuration serving a certificate with `problem` for `sni` (or the listener certificate's
    /// first name), made on first use.
    fn fault_config(&self, problem: &CertificateProblem, sni: Option<&str>) -> Result<Arc<ServerConfig>, String> {
        let name: Box<str> = match (problem, sni) {
            (CertificateProblem::WrongName(name), _) => name.as_ref().into(),
            (_, Some(sni)) => sni.to_ascii_lowercase().into(),
            (_, None) => first_name(&self.files.chain()).unwrap_or_else(|| "localhost".into()),
        };
        let key = (problem.clone(), name);
        let now = tokio::time::Instant::now();
        let mut made = self.faults.made.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, config)) = made.get(&key) {
            if now.saturating_duration_since(*at) < FAULT_CERT_REUSE {
                return Ok(Arc::clone(config));
            }
        }
        let certified = self.faults.make(problem, &key.1)?;
        let config = server_config(&self.provider, Arc::new(Fixed(Arc::new(certified)))).map_err(|e| e.to_string())?;
        if made.len() >= FAULT_CACHE {
            made.clear();
        }
        made.insert(key, (now, Arc::clone(&config)));
        Ok(config)
    }

    /// Loads the certificate files again if either changed; see [`CertFiles::reload_if_changed`].
    pub fn reload_if_changed(&self) -> Result<bool, TlsSetupError> {
        self.files.reload_if_changed()
    }

    /// Checks the certificate files every [`RELOAD_CHECK`] until `stop` resolves.
    pub async fn watch(self: Arc<Self>, listener: String, stop: impl std::future::Future<Output = ()>) {
        Arc::clone(&self.files).watch(listener, stop).await
    }
}
