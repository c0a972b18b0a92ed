//! Certificates and keys from PEM files, for every part that serves or checks TLS: listeners, the control
//! port and TLS origination. [`CertFiles`] serves a pair that is reloaded when its files change.

use std::{
    io,
    path::{Path, PathBuf},
};

use rustls::pki_types::{pem::PemObject, CertificateDer};

pub mod cert_files;

pub use cert_files::CertFiles;

/// Why a TLS origination setting was refused.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("{path}: certificate {index} is not a valid CA certificate: {message}")]
    BadCertificate { path: PathBuf, index: usize, message: String },
    #[error("the system trust store has no usable certificate ({0})")]
    System(String),
    #[error("roots: none needs a ca_file")]
    NoRoots,
    #[error("{path}: not a usable private key: {message}")]
    BadKey { path: PathBuf, message: String },
    #[error("{0:?} is not a valid TLS server name")]
    ServerName(String),
    #[error("{path}: {message}")]
    BadIssuer { path: PathBuf, message: String },
}

/// Every certificate in a PEM file.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let pem = std::fs::read(path).map_err(|source| TlsSetupError::Read { path: path.to_owned(), source })?;
    let mut certs = Vec::new();
    for (index, cert) in CertificateDer::pem_slice_iter(&pem).enumerate() {
        certs.push(cert.map_err(|e| TlsSetupError::BadCertificate {
            path: path.to_owned(),
            index,
            message: e.to_string(),
        })?);
    }
    if certs.is_empty() {
        return Err(TlsSetupError::NoCertificate { path: path.to_owned() });
    }
    Ok(certs)
}
