//! `listeners:` and the flags that shape them (`--listen`, `--upstream`): HTTP listeners with their
//! routes, TCP listeners, upstream URLs parsed strictly.

use std::{sync::Arc, time::Duration};

use http::uri::Scheme;

use super::{
    check_name,
    file::{FileFaultHeaders, FileListener, FileListenerTls, FileRoute, FileUpstreamTls},
    opt_duration, socket_addr, Overrides, DEFAULT_LISTEN,
};
use crate::{
    fault::{rewrite_refuses, FaultHeaders, HeaderNames, HostPattern, Percentage},
    proxy::{
        settings::{ListenerConfig, Mode, Protocol, RouteConfig, RouteHost, TcpListenerConfig, Upstream},
        tls::TlsOrigin,
        tls_listen::ListenerTls,
    },
    tls::TlsSetupError,
    topology::RouteId,
};

/// A route with only a name and an upstream (or none, on a forward listener): what the flags add.
fn default_route(upstream: Option<String>) -> FileRoute {
    FileRoute {
        name: "default".into(),
        hosts: Vec::new(),
        path_prefix: None,
        upstream,
        protocol: Protocol::Auto,
        connect_timeout: None,
        timeout: None,
        tls: None,
        preserve_host: None,
        fault_headers: None,
    }
}

/// Applies `--listen`, `--upstream` and `--fault-headers` to the first listener (made, named `web`, when the
/// file has none) and gives every forward listener a route for the destinations its routes do not name.
/// Returns whether the listener was made here.
pub(super) fn apply_overrides(listeners: &mut Vec<FileListener>, o: &Overrides, problems: &mut Vec<String>) -> bool {
    let implicit_listener = listeners.is_empty();
    if implicit_listener {
        listeners.push(FileListener {
            name: "web".into(),
            bind: DEFAULT_LISTEN.into(),
            mode: Mode::Reverse,
            tls: None,
            routes: Vec::new(),
            upstream: None,
            connect_timeout: None,
        });
    }
    if let Some(first) = listeners.first_mut() {
        if let Some(listen) = &o.listen {
            first.bind = listen.clone();
        }
        if let Some(upstream) = &o.upstream {
            match first.routes.iter_mut().find(|r| r.hosts.is_empty() && r.path_prefix.is_none()) {
                Some(default) => default.upstream = Some(upstream.clone()),
                None => first.routes.push(default_route(Some(upstream.clone()))),
            }
        }
        if o.fault_headers {
            match first.routes.iter_mut().find(|r| r.hosts.is_empty() && r.path_prefix.is_none()) {
                // The file's own setting of that route stands.
                Some(default) => {
                    default.fault_headers.get_or_insert(FileFaultHeaders::Switch(true));
                }
                None => problems.push(
                    "--fault-headers: the first listener has no default route (one without hosts and path_prefix); \
                     pass --upstream URL, or set fault_headers on a route in the config"
                        .into(),
                ),
            }
        }
    }
    for l in listeners.iter_mut().filter(|l| l.mode == Mode::Forward) {
        let catch_all = l.routes.iter().any(|r| r.hosts.is_empty() && r.path_prefix.is_none());
        if !catch_all && !l.routes.iter().any(|r| r.name == "default") {
            l.routes.push(default_route(None));
        }
    }
    implicit_listener
}

/// Every listener, checked: the HTTP listeners, then the TCP listeners, their routes numbered in that
/// order ([`RouteId`]).
/// The server's bounds that routes' fault headers are held to: `limits.max_duration` (the longest delay,
/// and the default of `max_delay`) and `limits.max_percentage`.
#[derive(Debug, Clone, Copy)]
pub(super) struct HeaderCaps {
    pub(super) max_duration: Duration,
    pub(super) max_percentage: Percentage,
}

pub(super) fn build(
    files: &[FileListener],
    implicit_listener: bool,
    caps: HeaderCaps,
    problems: &mut Vec<String>,
) -> (Vec<ListenerConfig>, Vec<TcpListenerConfig>) {
    let mut listeners = Vec::new();
    let mut tcp_files = Vec::new();
    let mut next_route = 0u32;
    for (li, l) in files.iter().enumerate() {
        let at = format!("listeners[{li}]");
        check_name(&l.name, &format!("{at}.name"), problems);
        if files.iter().take(li).any(|o| o.name == l.name) {
            problems.push(format!("{at}.name: another listener is already named {:?}", l.name));
        }
        if l.mode == Mode::Tcp {
            tcp_files.push((li, l));
            continue;
        }
        if let Some(listener) = http_listener(&at, l, implicit_listener, caps, &mut next_route, problems) {
            listeners.push(listener);
        }
    }
    let tcp = tcp_listeners(&tcp_files, &listeners, &mut next_route, problems);
    (listeners, tcp)
}

/// An HTTP listener (reverse or forward) and its routes; `None` when its bind address is not one.
fn http_listener(
    at: &str,
    l: &FileListener,
    implicit_listener: bool,
    caps: HeaderCaps,
    next_route: &mut u32,
    problems: &mut Vec<String>,
) -> Option<ListenerConfig> {
    for (key, set) in [("upstream", l.upstream.is_some()), ("connect_timeout", l.connect_timeout.is_some())] {
        if set {
            problems.push(format!(
                "{at}.{key}: only a tcp listener (mode: tcp) has one; an HTTP listener's routes have upstreams"
            ));
        }
    }
    let bind = socket_addr(&l.bind, &format!("{at}.bind"), problems);
    let forward = l.mode == Mode::Forward;
    let tls = match &l.tls {
        None => None,
        Some(_) if forward => {
            problems.push(format!("{at}.tls: a forward listener does not terminate TLS (clients use CONNECT)"));
            None
        }
        Some(t) => listener_tls(at, t, problems),
    };
    let forwarded_proto = if l.tls.is_some() { "https" } else { "http" };
    if forward {
        // Its routes were completed by `apply_overrides`.
    } else if l.routes.is_empty() && implicit_listener {
        problems.push(
            "no listener and no upstream: pass --upstream http://host:port, or list listeners in a config file (--config)"
                .into(),
        );
    } else if l.routes.is_empty() {
        problems.push(format!(
            "{at}.routes: the listener has no route; add one (or pass --upstream URL for a default route)"
        ));
    }
    let mut routes = Vec::new();
    for (ri, r) in l.routes.iter().enumerate() {
        let at = format!("{at}.routes[{ri}]");
        check_name(&r.name, &format!("{at}.name"), problems);
        if l.routes.iter().take(ri).any(|o| o.name == r.name) {
            problems.push(format!("{at}.name: another route of this listener is already named {:?}", r.name));
        }
        if let Some(route) = route(&at, r, forward, forwarded_proto, RouteId::new(*next_route), caps, problems) {
            if bind.is_some() {
                routes.push(route);
                *next_route += 1;
            }
        }
    }
    Some(ListenerConfig { name: l.name.clone(), bind: bind?, mode: l.mode, tls, routes })
}

/// `tls:` of a listener: its certificate pair, and the optional issuer of TLS faults' certificates.
fn listener_tls(at: &str, t: &FileListenerTls, problems: &mut Vec<String>) -> Option<Arc<ListenerTls>> {
    let tls = ListenerTls::new(&t.cert_file, &t.key_file).map_err(|e| (format!("{at}.tls"), &t.key_file, e)).and_then(
        |tls| match &t.fault_issuer {
            None => Ok(tls),
            Some(i) => tls
                .with_fault_issuer(&i.cert_file, &i.key_file)
                .map_err(|e| (format!("{at}.tls.fault_issuer"), &i.key_file, e)),
        },
    );
    match tls {
        Ok(tls) => Some(Arc::new(tls)),
        Err((section, key_file, e)) => {
            let field = match &e {
                TlsSetupError::BadKey { .. } => "key_file",
                TlsSetupError::Read { path, .. } if path == key_file => "key_file",
                _ => "cert_file",
            };
            problems.push(format!("{section}.{field}: {e}"));
            None
        }
    }
}

/// One route of an HTTP listener, checked; `None` when its upstream is not usable.
fn route(
    at: &str,
    r: &FileRoute,
    forward: bool,
    forwarded_proto: &'static str,
    id: RouteId,
    caps: HeaderCaps,
    problems: &mut Vec<String>,
) -> Option<RouteConfig> {
    if let Some(p) = &r.path_prefix {
        if !p.starts_with('/') {
            problems.push(format!("{at}.path_prefix: must start with '/', got {p:?}"));
        }
    }
    let upstream = match (&r.upstream, forward) {
        (Some(u), false) => parse_upstream(u, &format!("{at}.upstream"), problems)
            .and_then(|u| with_tls(u, r.tls.as_ref(), at, problems))
            .map(Some),
        (None, false) => {
            problems.push(format!("{at}.upstream: missing; a route needs an upstream URL (http://host:port)"));
            None
        }
        (None, true) => Some(None),
        (Some(_), true) => {
            problems.push(format!(
                "{at}.upstream: a forward listener's requests go to their own destination; name the \
                 destinations in hosts (\"api.example.com\", \"*.example.com:443\") and leave upstream out"
            ));
            None
        }
    };
    if forward && r.tls.is_some() {
        problems.push(format!("{at}.tls: only for a reverse route with an https:// upstream"));
    }
    let hosts = route_hosts(&r.hosts, forward, at, problems);
    let preserve_host =
        r.preserve_host.unwrap_or_else(|| upstream.as_ref().and_then(Option::as_ref).is_none_or(|u| u.tls.is_none()));
    let connect_timeout =
        opt_duration(&r.connect_timeout, &format!("{at}.connect_timeout"), problems).unwrap_or(Duration::from_secs(5));
    let timeout = opt_duration(&r.timeout, &format!("{at}.timeout"), problems).unwrap_or(Duration::from_secs(30));
    let fault_headers =
        r.fault_headers.as_ref().and_then(|f| fault_headers(f, caps, &format!("{at}.fault_headers"), problems));
    Some(RouteConfig {
        id,
        name: r.name.clone(),
        hosts,
        path_prefix: r.path_prefix.clone(),
        upstream: upstream?,
        preserve_host,
        forwarded_proto,
        protocol: r.protocol,
        connect_timeout,
        timeout,
        fault_headers,
    })
}

/// A route's `fault_headers`, checked: `None` when off (or invalid: the problems say why). Every name a
/// valid header name the proxy does not set itself, no two alike; `max_delay` more than zero and within
/// `limits.max_duration`, its default.
fn fault_headers(
    f: &FileFaultHeaders,
    caps: HeaderCaps,
    at: &str,
    problems: &mut Vec<String>,
) -> Option<Arc<FaultHeaders>> {
    let set = match f {
        FileFaultHeaders::Switch(false) => return None,
        FileFaultHeaders::Switch(true) => {
            return Some(Arc::new(FaultHeaders::envoy(caps.max_duration, caps.max_percentage)));
        }
        FileFaultHeaders::Set(set) => set,
    };
    let before = problems.len();
    let mut names = HeaderNames::envoy();
    for (key, value) in set.names.given() {
        let here = format!("{at}.names.{key}");
        let name = match http::HeaderName::from_bytes(value.as_bytes()) {
            Ok(n) => n,
            Err(_) => {
                problems.push(format!("{here}: {value:?} is not a valid header name (letters, digits and -)"));
                continue;
            }
        };
        if rewrite_refuses(&name) {
            problems.push(format!("{here}: {name} frames the message or belongs to one hop; pick another name"));
            continue;
        }
        if let Some(slot) = names.slot(key) {
            *slot = name;
        }
    }
    let all = names.all();
    for (i, (key, name)) in HeaderNames::KEYS.iter().zip(all).enumerate() {
        if let Some(first) = all.iter().take(i).position(|n| *n == name) {
            let other = HeaderNames::KEYS.get(first).copied().unwrap_or("another");
            problems.push(format!("{at}.names.{key}: {name} is already the header for {other}; each needs its own"));
        }
    }
    let max_delay = match opt_duration(&set.max_delay, &format!("{at}.max_delay"), problems) {
        None => caps.max_duration,
        Some(d) if d.is_zero() => {
            problems.push(format!("{at}.max_delay: must be longer than 0 (a request's delay is cut to it)"));
            caps.max_duration
        }
        Some(d) if d > caps.max_duration => {
            problems.push(format!(
                "{at}.max_delay: {} exceeds the server's maximum of {} (limits.max_duration)",
                humantime::format_duration(d),
                humantime::format_duration(caps.max_duration)
            ));
            caps.max_duration
        }
        Some(d) => d,
    };
    (problems.len() == before).then(|| Arc::new(FaultHeaders { names, max_delay, max_percentage: caps.max_percentage }))
}

/// The TCP listeners, checked; their routes are numbered after every HTTP route. A TCP listener's implicit
/// route is named after it, so its name must not be an HTTP route's too (`match.routes` would be ambiguous).
fn tcp_listeners(
    files: &[(usize, &FileListener)],
    http: &[ListenerConfig],
    next_route: &mut u32,
    problems: &mut Vec<String>,
) -> Vec<TcpListenerConfig> {
    let mut out = Vec::new();
    for &(li, l) in files {
        let at = format!("listeners[{li}]");
        if let Some(route) =
            http.iter().flat_map(|h| h.routes.iter().map(move |r| (h, r))).find(|(_, r)| r.name == l.name)
        {
            problems.push(format!(
                "{at}.name: {:?} is also a route of listener {:?}; a tcp listener's name is its route's name in match.routes, so it must be unique among routes",
                l.name, route.0.name
            ));
        }
        if !l.routes.is_empty() {
            problems.push(format!("{at}.routes: a tcp listener has no routes; give it an upstream: \"host:port\""));
        }
        let bind = socket_addr(&l.bind, &format!("{at}.bind"), problems);
        let upstream = match &l.upstream {
            None => {
                problems.push(format!(
                    "{at}.upstream: required for a tcp listener (\"host:port\", e.g. \"127.0.0.1:6379\")"
                ));
                None
            }
            Some(u) => tcp_upstream(u, &format!("{at}.upstream"), problems),
        };
        let connect_timeout = opt_duration(&l.connect_timeout, &format!("{at}.connect_timeout"), problems)
            .unwrap_or(Duration::from_secs(5));
        if let (Some(bind), Some(upstream)) = (bind, upstream) {
            out.push(TcpListenerConfig {
                name: l.name.clone(),
                bind,
                upstream,
                connect_timeout,
                route: RouteId::new(*next_route),
            });
            *next_route += 1;
        }
    }
    out
}

/// A TCP upstream: `host:port` (a name, an IPv4 address, or `[IPv6]`), no scheme.
fn tcp_upstream(s: &str, at: &str, problems: &mut Vec<String>) -> Option<String> {
    if s.contains("://") {
        problems.push(format!("{at}: {s:?} has a scheme; a tcp upstream is host:port (\"127.0.0.1:6379\")"));
        return None;
    }
    let ok = match s.rsplit_once(':') {
        Some((host, port)) => {
            let host_ok = !host.is_empty()
                && !host.contains(['/', ' '])
                && (host.starts_with('[') == host.ends_with(']'))
                && (host.starts_with('[') || !host.contains(':'));
            host_ok && port.parse::<u16>().is_ok_and(|p| p != 0)
        }
        None => false,
    };
    if ok {
        Some(s.to_owned())
    } else {
        problems.push(format!("{at}: {s:?} is not host:port (\"127.0.0.1:6379\", \"redis:6379\", \"[::1]:5432\")"));
        None
    }
}

/// A route's `hosts`: names, `*.suffix` wildcards, and on a forward listener an optional port.
fn route_hosts(hosts: &[String], forward: bool, at: &str, problems: &mut Vec<String>) -> Vec<RouteHost> {
    let mut out = Vec::new();
    for (i, h) in hosts.iter().enumerate() {
        let (name, port) = match h.rsplit_once(':') {
            Some((name, port)) if !name.contains(':') || name.ends_with(']') => match port.parse::<u16>() {
                Ok(p) if forward && p > 0 => (name, Some(p)),
                Ok(_) if forward => {
                    problems.push(format!("{at}.hosts[{i}]: {h:?}: the port must be 1–65535"));
                    continue;
                }
                Ok(_) => {
                    problems.push(format!(
                        "{at}.hosts[{i}]: {h:?}: a port is only for forward listeners' destinations; a reverse \
                         route matches the host name alone"
                    ));
                    continue;
                }
                Err(_) => {
                    problems.push(format!("{at}.hosts[{i}]: {h:?}: {port:?} is not a port"));
                    continue;
                }
            },
            _ => (h.as_str(), None),
        };
        let name = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')).unwrap_or(name);
        if name.is_empty() {
            problems.push(format!("{at}.hosts[{i}]: empty host"));
            continue;
        }
        out.push(RouteHost { host: HostPattern::parse(name), port });
    }
    out
}

/// Adds the route's `tls` settings to an `https://` upstream; refuses them on an `http://` one.
fn with_tls(
    mut upstream: Upstream,
    tls: Option<&FileUpstreamTls>,
    at: &str,
    problems: &mut Vec<String>,
) -> Option<Upstream> {
    if upstream.scheme != Scheme::HTTPS {
        if tls.is_some() {
            problems.push(format!("{at}.tls: the upstream is http://; TLS settings need an https:// upstream"));
            return None;
        }
        return Some(upstream);
    }
    let default = FileUpstreamTls::default();
    let t = tls.unwrap_or(&default);
    match TlsOrigin::new(upstream.authority.host(), t.server_name.as_deref(), t.roots, t.ca_file.as_deref()) {
        Ok(origin) => {
            upstream.tls = Some(Arc::new(origin));
            Some(upstream)
        }
        Err(e) => {
            let field = match &e {
                TlsSetupError::ServerName(_) if t.server_name.is_some() => "tls.server_name",
                TlsSetupError::ServerName(_) => "upstream",
                TlsSetupError::System(_) | TlsSetupError::NoRoots => "tls.roots",
                _ => "tls.ca_file",
            };
            problems.push(format!("{at}.{field}: {e}"));
            None
        }
    }
}

/// An upstream URL: `http://host:port` or `https://host:port`, no path.
pub fn parse_upstream(s: &str, at: &str, problems: &mut Vec<String>) -> Option<Upstream> {
    let uri: http::Uri = match s.parse() {
        Ok(u) => u,
        Err(e) => {
            problems.push(format!("{at}: {s:?} is not a URL ({e}); expected http://host:port"));
            return None;
        }
    };
    let scheme = match uri.scheme_str() {
        Some("http") => Scheme::HTTP,
        Some("https") => Scheme::HTTPS,
        _ => {
            problems.push(format!("{at}: {s:?} needs the http:// or https:// scheme (http://host:port)"));
            return None;
        }
    };
    let Some(authority) = uri.authority().cloned() else {
        problems.push(format!("{at}: {s:?} has no host"));
        return None;
    };
    if let Err(why) = check_authority(&authority) {
        problems.push(format!("{at}: {s:?} {why}; expected http://host:port (port 1–65535, or none for the scheme's)"));
        return None;
    }
    if uri.path_and_query().is_some_and(|pq| pq.as_str() != "/") {
        problems.push(format!(
            "{at}: {s:?} has a path; an upstream is scheme://host:port only (request paths pass through unchanged)"
        ));
        return None;
    }
    Some(Upstream { scheme, authority, tls: None })
}

/// An upstream's `host[:port]`, strictly: a host, and a port that is a number from 1 to 65535 when there
/// is a colon at all (the `http` crate reads an unparsable port as none, which would mean port 80).
fn check_authority(a: &http::uri::Authority) -> Result<(), &'static str> {
    let raw = a.as_str();
    if raw.contains('@') {
        return Err("has user info (user@host), which an upstream URL cannot carry");
    }
    let host = a.host();
    if host.is_empty() || host == "[]" {
        return Err("has no host");
    }
    match raw.strip_prefix(host) {
        Some("") => Ok(()),
        Some(port) => match port.strip_prefix(':').map(str::parse::<u16>) {
            Some(Ok(p)) if p > 0 => Ok(()),
            _ => Err("has a port that is not a number from 1 to 65535"),
        },
        None => Err("is not host:port"),
    }
}
