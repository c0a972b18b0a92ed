//! TLS origination: a route whose upstream is `https://…` speaks TLS to it (rustls), so a plain-HTTP
//! listener can put HTTP-level faults on calls to an HTTPS API without decrypting anyone's traffic.
//!
//! The client configuration is built once, when the config is checked: a bad CA file is a config error
//! with its field path, not a failed request.

use std::{
    fmt, io,
    path::Path,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use rustls::{pki_types::ServerName, ClientConfig, RootCertStore};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};
use tokio_rustls::{client::TlsStream, TlsConnector};

use crate::tls::{read_certificates, TlsSetupError};

/// Which certificate authorities an HTTPS upstream's certificate may chain to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Roots {
    /// The Mozilla root programme's CAs, built into the binary (the same everywhere, no files needed).
    #[default]
    Bundled,
    /// The operating system's trust store.
    System,
    /// None: only `ca_file`.
    None,
}

/// The TLS side of one route's upstream: trust, the name sent as SNI and checked in the certificate, and
/// one client configuration per ALPN offer (HTTP/1.1 or HTTP/2).
pub struct TlsOrigin {
    server_name: ServerName<'static>,
    h1: TlsConnector,
    h2: TlsConnector,
}

impl fmt::Debug for TlsOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsOrigin").field("server_name", &self.server_name).finish_non_exhaustive()
    }
}

impl TlsOrigin {
    /// `host`: the upstream URL's host, used for SNI and certificate checks unless `server_name` is given.
    pub fn new(
        host: &str,
        server_name: Option<&str>,
        roots: Roots,
        ca_file: Option<&Path>,
    ) -> Result<TlsOrigin, TlsSetupError> {
        let mut store = RootCertStore::empty();
        match roots {
            Roots::Bundled => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            Roots::System => {
                let found = rustls_native_certs::load_native_certs();
                let (added, _) = store.add_parsable_certificates(found.certs);
                if added == 0 {
                    let why = found.errors.first().map(|e| e.to_string()).unwrap_or_else(|| "no certificates".into());
                    return Err(TlsSetupError::System(why));
                }
            }
            Roots::None if ca_file.is_none() => return Err(TlsSetupError::NoRoots),
            Roots::None => {}
        }
        if let Some(path) = ca_file {
            for (index, cert) in read_certificates(path)?.into_iter().enumerate() {
                store.add(cert).map_err(|e| TlsSetupError::BadCertificate {
                    path: path.to_owned(),
                    index,
                    message: e.to_string(),
                })?;
            }
        }
        let name = server_name.unwrap_or(host);
        // An IPv6 literal comes bracketed from a URL.
        let bare = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')).unwrap_or(name);
        let server_name =
            ServerName::try_from(bare.to_owned()).map_err(|_| TlsSetupError::ServerName(name.to_owned()))?;

        let base = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsSetupError::System(e.to_string()))?
            .with_root_certificates(store)
            .with_no_client_auth();
        let with_alpn = |proto: &[u8]| {
            let mut c = base.clone();
            c.alpn_protocols = vec![proto.to_vec()];
            TlsConnector::from(Arc::new(c))
        };
        Ok(TlsOrigin { server_name, h1: with_alpn(b"http/1.1"), h2: with_alpn(b"h2") })
    }

    /// The TLS handshake over a connected socket, offering HTTP/2 or HTTP/1.1 by ALPN.
    pub async fn connect(&self, tcp: TcpStream, h2: bool) -> io::Result<TlsStream<TcpStream>> {
        let connector = if h2 { &self.h2 } else { &self.h1 };
        connector.connect(self.server_name.clone(), tcp).await
    }
}

/// A connection to an upstream: plain TCP or TLS over it.
pub enum UpstreamIo {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for UpstreamIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_read(cx, buf),
            UpstreamIo::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpstreamIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_write(cx, buf),
            UpstreamIo::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_flush(cx),
            UpstreamIo::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_shutdown(cx),
            UpstreamIo::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            UpstreamIo::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            UpstreamIo::Plain(s) => s.is_write_vectored(),
            UpstreamIo::Tls(s) => s.is_write_vectored(),
        }
    }
}
