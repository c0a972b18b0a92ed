//! `toxiproxy:` and `--toxiproxy`: the Toxiproxy-compatible REST API (off unless given), with the control
//! port's off-loopback refusal.

use std::{net::SocketAddr, time::Duration};

use super::{file::FileToxiproxy, opt_duration, socket_addr, Overrides};
use crate::control::auth::Tokens;

/// Proxies the API may hold at once when `toxiproxy.max_proxies` is not given.
pub const DEFAULT_MAX_PROXIES: usize = 32;
/// Highest `toxiproxy.max_proxies`: each proxy is a listener with its own slot in the rule set.
const MAX_MAX_PROXIES: usize = 1024;

/// The Toxiproxy API's settings, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToxiproxyConfig {
    /// Where the REST API listens (Toxiproxy's default port is 8474).
    pub bind: SocketAddr,
    /// Proxies (TCP listeners created through the API) at once.
    pub max_proxies: usize,
    /// Longest wait for a proxy's upstream connection.
    pub connect_timeout: Duration,
}

pub(super) fn build(
    file: Option<&FileToxiproxy>,
    o: &Overrides,
    tokens: &Tokens,
    problems: &mut Vec<String>,
) -> Option<ToxiproxyConfig> {
    let (bind, key) = match (&o.toxiproxy, file.and_then(|f| f.bind.as_deref())) {
        (Some(flag), _) => (flag.as_str(), "--toxiproxy"),
        (None, Some(bind)) => (bind, "toxiproxy.bind"),
        (None, None) => {
            if file.is_some() {
                problems.push("toxiproxy.bind: required (the REST API's address, e.g. \"127.0.0.1:8474\")".into());
            }
            return None;
        }
    };
    let bind = socket_addr(bind, key, problems);
    let max_proxies = file.and_then(|f| f.max_proxies).unwrap_or(DEFAULT_MAX_PROXIES);
    if !(1..=MAX_MAX_PROXIES).contains(&max_proxies) {
        problems.push(format!("toxiproxy.max_proxies: from 1 to {MAX_MAX_PROXIES}, got {max_proxies}"));
    }
    let connect_timeout = file
        .and_then(|f| opt_duration(&f.connect_timeout, "toxiproxy.connect_timeout", problems))
        .unwrap_or(Duration::from_secs(5));
    if let Some(addr) = bind.filter(|a| !a.ip().is_loopback()) {
        if tokens.is_empty() {
            problems.push(format!(
                "{key}: {addr} is not a loopback address and the control service has no token: anyone who \
                 reaches the Toxiproxy API could create proxies and toxics. Give tokens (control.tokens_file, \
                 --tokens-file or EDGEFAULT_ADMIN_TOKEN; clients then send them, docs/compat.md), or bind it to \
                 127.0.0.1"
            ));
        }
    }
    Some(ToxiproxyConfig { bind: bind?, max_proxies, connect_timeout })
}
