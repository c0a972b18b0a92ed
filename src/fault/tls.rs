//! `tls`: faults on the TLS handshake of a listener that terminates TLS; see `TlsFault` in traffic.proto.

use std::{sync::Arc, time::Duration};

/// One TLS fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsFault {
    /// Answer the ClientHello with this fatal alert, then close.
    Alert(TlsAlert),
    /// Reset the connection at the ClientHello.
    Reset,
    /// Complete the handshake with a certificate the client should refuse.
    Certificate(CertificateProblem),
    /// Hold the handshake after the ClientHello; `None`: until the experiment ends.
    Stall(Option<Duration>),
}

impl TlsFault {
    /// Whether the fault ends the handshake (nothing after it in the list runs).
    pub fn ends_handshake(&self) -> bool {
        !matches!(self, TlsFault::Stall(_))
    }
}

/// The fatal alerts an edge sends to a ClientHello it will not serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsAlert {
    HandshakeFailure,
    InternalError,
    ProtocolVersion,
    UnrecognizedName,
    AccessDenied,
    InsufficientSecurity,
}

impl TlsAlert {
    /// Every alert with its name in the experiment schema.
    pub const ALL: [(&'static str, TlsAlert); 6] = [
        ("handshake_failure", TlsAlert::HandshakeFailure),
        ("internal_error", TlsAlert::InternalError),
        ("protocol_version", TlsAlert::ProtocolVersion),
        ("unrecognized_name", TlsAlert::UnrecognizedName),
        ("access_denied", TlsAlert::AccessDenied),
        ("insufficient_security", TlsAlert::InsufficientSecurity),
    ];

    pub fn from_name(name: &str) -> Option<TlsAlert> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, a)| *a)
    }

    /// The alert's code (RFC 8446, section 6).
    pub fn code(self) -> u8 {
        match self {
            TlsAlert::HandshakeFailure => 40,
            TlsAlert::AccessDenied => 49,
            TlsAlert::ProtocolVersion => 70,
            TlsAlert::InsufficientSecurity => 71,
            TlsAlert::InternalError => 80,
            TlsAlert::UnrecognizedName => 112,
        }
    }

    /// The alert as a plaintext record, as a server sends it before any key is agreed: content type 21
    /// (alert), legacy version TLS 1.2, length 2, level fatal, the code.
    pub fn record(self) -> [u8; 7] {
        [21, 3, 3, 0, 2, 2, self.code()]
    }
}

/// What is wrong with the certificate a [`TlsFault::Certificate`] serves.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CertificateProblem {
    /// For the right name; expired yesterday.
    Expired,
    /// For the right name; valid from tomorrow.
    NotYetValid,
    /// Valid, for another name.
    WrongName(Arc<str>),
    /// Valid, for the right name, signed by itself.
    SelfSigned,
}

impl CertificateProblem {
    /// The name of the problem in the experiment schema.
    pub const NAMES: [&'static str; 4] = ["expired", "not_yet_valid", "wrong_name", "self_signed"];

    /// The name used when `wrong_name` gives none.
    pub const DEFAULT_WRONG_NAME: &'static str = "wrong-name.invalid";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_records_are_fatal_plaintext_alerts() {
        assert_eq!(TlsAlert::HandshakeFailure.record(), [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]);
        for (name, alert) in TlsAlert::ALL {
            assert_eq!(TlsAlert::from_name(name), Some(alert));
        }
        assert_eq!(TlsAlert::from_name("bad_record_mac"), None);
    }
}
