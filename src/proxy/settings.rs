//! A listener's and a route's settings, as the proxy takes them. `config` builds them from the file and
//! the flags, checked; the proxy never reads the file itself.

use std::{fmt, net::SocketAddr, sync::Arc, time::Duration};

use http::uri::{Authority, Scheme};
use serde::Deserialize;

use super::{tls::TlsOrigin, tls_listen::ListenerTls};
use crate::{
    fault::{FaultHeaders, HostPattern},
    topology::RouteId,
};

/// Which HTTP version the proxy speaks to an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// HTTP/1.x clients go out over HTTP/1.1; HTTP/2 clients over HTTP/2 when the request is gRPC (which
    /// needs it) or the upstream answers an HTTP/2 preface (probed once, remembered), else over HTTP/1.1.
    #[default]
    Auto,
    Http1,
    Http2,
}

/// Where a route sends its requests.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub scheme: Scheme,
    pub authority: Authority,
    /// Set for `https://` upstreams: how the proxy speaks TLS to it.
    pub tls: Option<Arc<TlsOrigin>>,
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.authority)
    }
}

/// A host a route takes, with the port a forward listener's destination must have (`api.example.com:443`).
#[derive(Debug, Clone)]
pub struct RouteHost {
    pub host: HostPattern,
    pub port: Option<u16>,
}

impl RouteHost {
    pub fn matches(&self, host: &str, port: Option<u16>) -> bool {
        self.host.matches(host) && self.port.is_none_or(|p| Some(p) == port)
    }
}

#[derive(Debug, Clone)]
pub struct RouteConfig {
    pub id: RouteId,
    pub name: String,
    pub hosts: Vec<RouteHost>,
    pub path_prefix: Option<String>,
    /// `None` on a forward listener: the request's own destination.
    pub upstream: Option<Upstream>,
    /// Whether the client's `host` header goes to the upstream unchanged; otherwise it becomes the
    /// upstream's authority (the default for `https://` upstreams, whose certificate names that host).
    pub preserve_host: bool,
    /// What `x-forwarded-proto` records: `https` behind a TLS listener.
    pub forwarded_proto: &'static str,
    pub protocol: Protocol,
    /// Longest wait for the upstream's TCP connection.
    pub connect_timeout: Duration,
    /// Longest wait for the upstream's response head, once the request is sent.
    pub timeout: Duration,
    /// Set when the route lets requests ask for their own faults through headers
    /// (`fault_headers`); `None`, the default, costs a request nothing and passes those headers upstream.
    pub fault_headers: Option<Arc<FaultHeaders>>,
}

/// What a listener is to its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// In front of a service: routes send requests to their upstream.
    #[default]
    Reverse,
    /// An egress proxy (`HTTP_PROXY`/`HTTPS_PROXY`): absolute-form requests go to their own destination,
    /// `CONNECT` opens a tunnel to it.
    Forward,
    /// A byte relay to one upstream for non-HTTP dependencies, with toxics (a [`TcpListenerConfig`]).
    Tcp,
}

#[derive(Debug, Clone)]
pub struct ListenerConfig {
    pub name: String,
    pub bind: SocketAddr,
    pub mode: Mode,
    /// Set when the listener terminates TLS.
    pub tls: Option<Arc<ListenerTls>>,
    /// First match wins.
    pub routes: Vec<RouteConfig>,
}

/// A TCP listener (`mode: tcp`): every connection is relayed byte for byte to one upstream, with the toxics of
/// the experiments that target it.
#[derive(Debug, Clone)]
pub struct TcpListenerConfig {
    pub name: String,
    pub bind: SocketAddr,
    /// `host:port`, resolved at each connection.
    pub upstream: String,
    /// Longest wait for the upstream's TCP connection.
    pub connect_timeout: Duration,
    /// The listener's one implicit route (named after the listener), so experiments index it like any route.
    pub route: RouteId,
}
