//! `control:`, `admin:` and `audit:` with their flags: where the control and admin ports bind, the control
//! port's tokens and TLS, and the off-loopback refusal.

use std::{net::SocketAddr, path::PathBuf};

use super::{
    file::{FileAudit, FileBind, FileControl},
    socket_addr, Overrides, DEFAULT_CONTROL,
};
use crate::control::{
    auth::{Role, Token, Tokens},
    tls::ControlTls,
};

/// The control plane's settings, checked.
pub(super) struct Control {
    /// `None` only when the address was refused (a problem says so).
    pub bind: Option<SocketAddr>,
    pub tokens: Tokens,
    pub tls: Option<ControlTls>,
    pub audit: Option<PathBuf>,
    pub admin: Option<SocketAddr>,
}

pub(super) fn build(
    file: Option<&FileControl>,
    admin: Option<&FileBind>,
    audit: Option<&FileAudit>,
    o: &Overrides,
    problems: &mut Vec<String>,
) -> Control {
    let control_key = if o.control.is_some() { "--control" } else { "control.bind" };
    let control = socket_addr(
        o.control.as_deref().or(file.and_then(|c| c.bind.as_deref())).unwrap_or(DEFAULT_CONTROL),
        control_key,
        problems,
    );
    let tokens = control_tokens(file, o, problems);
    let control_tls = file
        .and_then(|c| c.tls.as_ref())
        .and_then(|t| ControlTls::load(&t.cert_file, &t.key_file, t.client_ca_file.as_deref(), problems));
    let mtls = file.and_then(|c| c.tls.as_ref()).is_some_and(|t| t.client_ca_file.is_some());
    if let Some(addr) = control.filter(|a| !a.ip().is_loopback()) {
        if tokens.is_empty() && !mtls {
            problems.push(format!(
                "{control_key}: {addr} is not a loopback address and the control service has no token and no \
                 mTLS: anyone who reaches it could start faults. Give tokens (control.tokens_file, \
                 --tokens-file or EDGEFAULT_ADMIN_TOKEN), or client certificates (control.tls.client_ca_file), \
                 or bind it to 127.0.0.1"
            ));
        }
    }
    let audit = o.audit.clone().or(audit.map(|a| a.path.clone()));
    let admin = match o.admin.as_deref().or(admin.map(|a| a.bind.as_str())) {
        Some(a) => socket_addr(a, if o.admin.is_some() { "--admin" } else { "admin.bind" }, problems),
        None => None,
    };
    Control { bind: control, tokens, tls: control_tls, audit, admin }
}

/// The tokens of `control.tokens_file`, `--tokens-file` and `EDGEFAULT_ADMIN_TOKEN`, together.
fn control_tokens(file: Option<&FileControl>, o: &Overrides, problems: &mut Vec<String>) -> Tokens {
    let mut tokens = Tokens::default();
    if let Some(path) = file.and_then(|c| c.tokens_file.as_deref()) {
        tokens.load_file(path, "control.tokens_file", problems);
    }
    if let Some(path) = &o.tokens_file {
        tokens.load_file(path, "--tokens-file", problems);
    }
    if let Some(secret) = &o.admin_token {
        tokens.add(Token::new("env", Role::Admin, secret.trim()), "EDGEFAULT_ADMIN_TOKEN", problems);
    }
    tokens
}
