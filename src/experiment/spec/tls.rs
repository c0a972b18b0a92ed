//! Proto → domain for TLS faults (the handshake faults of listeners that terminate TLS), and the rules that
//! keep them apart from request faults: an experiment with TLS faults has only TLS faults, targets
//! listeners that terminate TLS (not routes: none is chosen before the handshake), and matches only what a
//! handshake shows (the SNI name in `hosts`, the client's address in `client_cidrs`).

use rustls::pki_types::DnsName;

use super::Collector;
use crate::{
    fault::{CertificateProblem, TlsAlert, TlsFault},
    pb::v1 as pb,
    topology::Topology,
};

/// `faults[i].tls`; `None` when invalid (the problems are in `c`).
pub(super) fn convert(t: &pb::TlsFault, path: &str, c: &mut Collector) -> Option<TlsFault> {
    use pb::tls_fault::Kind as K;
    match &t.kind {
        None => {
            c.add(path, "set one of handshake_failure, certificate, stall");
            None
        }
        Some(K::HandshakeFailure(h)) => handshake_failure(h, &format!("{path}.handshake_failure"), c),
        Some(K::Certificate(cert)) => certificate(cert, &format!("{path}.certificate"), c).map(TlsFault::Certificate),
        Some(K::Stall(s)) => {
            let at = format!("{path}.stall.duration");
            match c.duration(&s.duration, &at, false) {
                Some(d) if d.is_zero() => {
                    c.add(at, "must be longer than zero (leave it out to stall until the experiment ends)");
                    None
                }
                hold => Some(TlsFault::Stall(hold)),
            }
        }
    }
}

/// `tls.handshake_failure`: an alert edgefault sends, or a reset.
fn handshake_failure(h: &pb::TlsHandshakeFailure, at: &str, c: &mut Collector) -> Option<TlsFault> {
    let alert = h.alert.trim().to_ascii_lowercase();
    if h.reset {
        if !alert.is_empty() {
            c.add(format!("{at}.alert"), "an alert or a reset, not both");
            return None;
        }
        return Some(TlsFault::Reset);
    }
    if alert.is_empty() {
        return Some(TlsFault::Alert(TlsAlert::HandshakeFailure));
    }
    let Some(a) = TlsAlert::from_name(&alert) else {
        let names: Vec<&str> = TlsAlert::ALL.iter().map(|(n, _)| *n).collect();
        c.add(
            format!("{at}.alert"),
            format!("{:?} is not an alert edgefault sends: one of {}", h.alert, names.join(", ")),
        );
        return None;
    };
    Some(TlsFault::Alert(a))
}

/// `tls.certificate`: a known problem, and a DNS name only for `wrong_name`.
fn certificate(cert: &pb::TlsCertificate, at: &str, c: &mut Collector) -> Option<CertificateProblem> {
    let problem = cert.problem.trim().to_ascii_lowercase();
    let name = cert.name.trim();
    if !name.is_empty() && problem != "wrong_name" {
        c.add(format!("{at}.name"), "only for problem: wrong_name (the others use the name the client asked for)");
        return None;
    }
    let problem = match problem.as_str() {
        "expired" => CertificateProblem::Expired,
        "not_yet_valid" => CertificateProblem::NotYetValid,
        "self_signed" => CertificateProblem::SelfSigned,
        "wrong_name" if name.is_empty() => CertificateProblem::WrongName(CertificateProblem::DEFAULT_WRONG_NAME.into()),
        "wrong_name" => match DnsName::try_from(name) {
            Ok(_) if name.len() <= 253 => CertificateProblem::WrongName(name.to_ascii_lowercase().into()),
            _ => {
                c.add(format!("{at}.name"), format!("{name:?} is not a DNS name"));
                return None;
            }
        },
        "" => {
            c.add(format!("{at}.problem"), format!("required: one of {}", CertificateProblem::NAMES.join(", ")));
            return None;
        }
        _ => {
            c.add(
                format!("{at}.problem"),
                format!(
                    "{:?} is not a certificate problem: one of {}",
                    cert.problem,
                    CertificateProblem::NAMES.join(", ")
                ),
            );
            return None;
        }
    };
    Some(problem)
}

/// The conditions of a match that only a request shows (not a connection or a handshake), by field name,
/// that are set. `hosts` is not one: a handshake has the SNI name.
pub(super) fn request_matchers(m: &pb::Match) -> Vec<&'static str> {
    let set = [
        ("path_prefix", !m.path_prefix.is_empty()),
        ("path_exact", !m.path_exact.is_empty()),
        ("path_regex", !m.path_regex.is_empty()),
        ("methods", !m.methods.is_empty()),
        ("headers", !m.headers.is_empty()),
        ("query", !m.query.is_empty()),
        ("grpc", m.grpc.is_some()),
    ];
    set.into_iter().filter(|(_, on)| *on).map(|(name, _)| name).collect()
}

/// Keeps TLS faults apart (see the module's doc). `topology`: `None` when validated without the server's
/// config (which listeners terminate TLS is then unknown).
pub(super) fn check(spec: &pb::ExperimentSpec, topology: Option<&Topology>, c: &mut Collector) {
    let (tls, other): (Vec<_>, Vec<_>) = super::fault_paths(spec)
        .filter(|(_, f)| f.kind.is_some())
        .partition(|(_, f)| matches!(f.kind, Some(pb::fault::Kind::Tls(_))));
    let Some((first, _)) = tls.first() else {
        return;
    };
    let why = format!("the experiment has TLS faults ({first}.tls)");
    for (path, _) in &other {
        c.add(
            path,
            format!(
                "not a TLS fault, and {why}: an experiment acts on handshakes or on what follows them, not both \
                 (start two experiments)"
            ),
        );
    }
    let default_match = pb::Match::default();
    let m = spec.r#match.as_ref().unwrap_or(&default_match);
    if !m.routes.is_empty() {
        c.add(
            "match.routes",
            format!("{why}: the handshake comes before any route is chosen; name the listeners in match.listeners"),
        );
    }
    for field in request_matchers(m) {
        c.add(
            format!("match.{field}"),
            format!("a request condition, and {why}: a handshake has no {field} (match.hosts is matched against the SNI name)"),
        );
    }
    if let Some(s) = &spec.sticky {
        if !matches!(s.key, Some(pb::sticky::Key::ClientIp(_)) | None) {
            c.add("sticky", format!("{why}: a connection is identified by client_ip only (no header or cookie)"));
        }
    }
    let Some(t) = topology else { return };
    for (i, l) in m.listeners.iter().enumerate() {
        if t.has_listener(l) && !t.is_tls_listener(l) {
            c.add(
                format!("match.listeners[{i}]"),
                format!("{l:?} does not terminate TLS (no tls: in its config); TLS faults apply to listeners that do"),
            );
        }
    }
    if m.listeners.is_empty() && t.tls_listener_names().is_empty() {
        c.add(
            format!("{first}.tls"),
            "no listener of this server terminates TLS (listeners[].tls in the config): nothing to apply it to",
        );
    }
}
