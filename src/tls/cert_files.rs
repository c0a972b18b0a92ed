//! A certificate and its key from PEM files, served by whatever is current: the files are checked every
//! [`RELOAD_CHECK`]; a changed pair is served to new connections without a restart, and one that does not
//! load is logged and the previous one kept. Used by TLS listeners and by the control port.

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use arc_swap::ArcSwap;
use rustls::{
    crypto::ring::sign::any_supported_type,
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer},
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};

use super::{read_certificates, TlsSetupError};

/// How often the certificate files are checked for changes.
pub const RELOAD_CHECK: Duration = Duration::from_secs(2);

/// Serves whatever certificate is current.
struct Current(ArcSwap<CertifiedKey>);

impl fmt::Debug for Current {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Current")
    }
}

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

/// A certificate pair from files, reloaded when they change.
pub struct CertFiles {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: Arc<Current>,
    /// Modification times of the files the current certificate came from.
    loaded: Mutex<(Option<SystemTime>, Option<SystemTime>)>,
}

impl fmt::Debug for CertFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        f.debug_struct("CertFiles").field("cert_file", &self.cert_file).field("key_file", &self.key_file).finish()
    }
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Reads a certificate chain and its private key, and checks that they belong together.
fn load(cert_file: &Path, key_file: &Path) -> Result<CertifiedKey, TlsSetupError> {
    let chain = read_certificates(cert_file)?;
    let pem = std::fs::read(key_file).map_err(|source| TlsSetupError::Read { path: key_file.to_owned(), source })?;
    let bad_key = |message: String| TlsSetupError::BadKey { path: key_file.to_owned(), message };
    let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| bad_key(e.to_string()))?;
    let signing = any_supported_type(&key).map_err(|e| bad_key(e.to_string()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| bad_key(format!("{e}: it is not the key of {}", cert_file.display())))?;
    Ok(certified)
}

impl CertFiles {
    /// Loads the pair; an unreadable file, a file without a certificate or a key that is not the
    /// certificate's is an error naming the file.
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<CertFiles, TlsSetupError> {
        let stamps = (mtime(cert_file), mtime(key_file));
        let current = Arc::new(Current(ArcSwap::from_pointee(load(cert_file, key_file)?)));
        Ok(CertFiles {
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            current,
            loaded: Mutex::new(stamps),
        })
    }

    /// What serves the current certificate to each handshake.
    pub fn resolver(&self) -> Arc<dyn ResolvesServerCert> {
        Arc::clone(&self.current) as Arc<dyn ResolvesServerCert>
    }

    /// The chain served now, leaf first.
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        self.current.0.load().cert.clone()
    }

    /// Loads the files again if either changed since the last load. `Ok(true)`: a new certificate is
    /// served from now on; an error leaves the current one in place.
    pub fn reload_if_changed(&self) -> Result<bool, TlsSetupError> {
        let stamps = (mtime(&self.cert_file), mtime(&self.key_file));
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if *loaded == stamps {
            return Ok(false);
        }
        // Remember the attempt either way: a broken file is reported once, not every check.
        *loaded = stamps;
        let certified = load(&self.cert_file, &self.key_file)?;
        self.current.0.store(Arc::new(certified));
        Ok(true)
    }

    /// Checks the files every [`RELOAD_CHECK`] until `stop` resolves; `what` names the listener (or the
    /// control port) in the logs.
    pub async fn watch(self: Arc<Self>, what: String, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = tokio::time::sleep(RELOAD_CHECK) => {}
                () = &mut stop => return,
            }
            match self.reload_if_changed() {
                Ok(true) => {
                    tracing::info!(listener = %what, cert = %self.cert_file.display(), "TLS certificate reloaded")
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(listener = %what, error = %e, "TLS certificate not reloaded; the previous one is still served")
                }
            }
        }
    }
}
