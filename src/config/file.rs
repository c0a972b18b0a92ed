//! The config file as written: what serde reads, before any check. Unknown keys are refused.

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;

use crate::proxy::{settings::Mode, settings::Protocol, tls::Roots};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    #[serde(default)]
    pub(super) listeners: Vec<FileListener>,
    pub(super) control: Option<FileControl>,
    pub(super) admin: Option<FileBind>,
    pub(super) audit: Option<FileAudit>,
    #[serde(default)]
    pub(super) limits: FileLimits,
    pub(super) workers: Option<usize>,
    pub(super) drain_grace: Option<String>,
    #[serde(default)]
    pub(super) experiments: Vec<Value>,
    #[serde(default)]
    pub(super) pages: std::collections::BTreeMap<String, super::pages::FilePage>,
    /// A directory of scenario files (`*.yaml`) added to the built-in catalogue.
    pub(super) scenarios_dir: Option<PathBuf>,
    /// The Toxiproxy-compatible REST API; off unless given.
    pub(super) toxiproxy: Option<FileToxiproxy>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileToxiproxy {
    pub(super) bind: Option<String>,
    pub(super) max_proxies: Option<usize>,
    pub(super) connect_timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileListener {
    pub(super) name: String,
    pub(super) bind: String,
    #[serde(default)]
    pub(super) mode: Mode,
    pub(super) tls: Option<FileListenerTls>,
    #[serde(default)]
    pub(super) routes: Vec<FileRoute>,
    /// `mode: tcp` only: `host:port`.
    pub(super) upstream: Option<String>,
    /// `mode: tcp` only.
    pub(super) connect_timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileListenerTls {
    pub(super) cert_file: PathBuf,
    pub(super) key_file: PathBuf,
    /// The CA that signs the certificates of TLS faults (expired, wrong name…).
    pub(super) fault_issuer: Option<FileFaultIssuer>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileFaultIssuer {
    pub(super) cert_file: PathBuf,
    pub(super) key_file: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileRoute {
    pub(super) name: String,
    #[serde(default)]
    pub(super) hosts: Vec<String>,
    pub(super) path_prefix: Option<String>,
    pub(super) upstream: Option<String>,
    #[serde(default)]
    pub(super) protocol: Protocol,
    pub(super) connect_timeout: Option<String>,
    pub(super) timeout: Option<String>,
    pub(super) tls: Option<FileUpstreamTls>,
    pub(super) preserve_host: Option<bool>,
    pub(super) fault_headers: Option<FileFaultHeaders>,
}

/// `fault_headers:` of a route: `true` (Envoy's header names), `false`, or a mapping that renames headers
/// and sets the caps (and enables them).
#[derive(Debug)]
pub(super) enum FileFaultHeaders {
    Switch(bool),
    Set(FileFaultHeaderSet),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileFaultHeaderSet {
    #[serde(default)]
    pub(super) names: FileFaultHeaderNames,
    pub(super) max_delay: Option<String>,
}

/// Header names that replace Envoy's, by what they ask for.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileFaultHeaderNames {
    pub(super) abort: Option<String>,
    pub(super) abort_grpc: Option<String>,
    pub(super) abort_percentage: Option<String>,
    pub(super) delay: Option<String>,
    pub(super) delay_percentage: Option<String>,
    pub(super) throughput: Option<String>,
    pub(super) throughput_percentage: Option<String>,
}

impl FileFaultHeaderNames {
    /// Every name given, with its key (`fault::HeaderNames::KEYS`).
    pub(super) fn given(&self) -> impl Iterator<Item = (&'static str, &String)> {
        [
            ("abort", &self.abort),
            ("abort_grpc", &self.abort_grpc),
            ("abort_percentage", &self.abort_percentage),
            ("delay", &self.delay),
            ("delay_percentage", &self.delay_percentage),
            ("throughput", &self.throughput),
            ("throughput_percentage", &self.throughput_percentage),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
    }
}

impl<'de> Deserialize<'de> for FileFaultHeaders {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Either;
        impl<'de> serde::de::Visitor<'de> for Either {
            type Value = FileFaultHeaders;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("true, false, or a mapping { names: { abort: …, delay: …, … }, max_delay: … }")
            }

            fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<FileFaultHeaders, E> {
                Ok(FileFaultHeaders::Switch(b))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<FileFaultHeaders, A::Error> {
                FileFaultHeaderSet::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(FileFaultHeaders::Set)
            }
        }
        d.deserialize_any(Either)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileUpstreamTls {
    #[serde(default)]
    pub(super) roots: Roots,
    pub(super) ca_file: Option<PathBuf>,
    pub(super) server_name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileBind {
    pub(super) bind: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileControl {
    pub(super) bind: Option<String>,
    /// YAML list of `{ name, role, token }`; see `control::auth`.
    pub(super) tokens_file: Option<PathBuf>,
    pub(super) tls: Option<FileControlTls>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileControlTls {
    pub(super) cert_file: PathBuf,
    pub(super) key_file: PathBuf,
    /// Set: clients must present a certificate this CA signed (mTLS).
    pub(super) client_ca_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileAudit {
    /// A file (appended to), or `-` for stderr.
    pub(super) path: PathBuf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileLimits {
    pub(super) default_duration: Option<String>,
    pub(super) max_duration: Option<String>,
    pub(super) max_start_delay: Option<String>,
    pub(super) history: Option<usize>,
    pub(super) max_active: Option<usize>,
    pub(super) max_percentage: Option<f64>,
    pub(super) allowed_routes: Option<Vec<String>>,
    pub(super) max_active_faults: Option<usize>,
    pub(super) max_connections: Option<usize>,
    pub(super) max_header_bytes: Option<usize>,
    pub(super) header_read_timeout: Option<String>,
    pub(super) idle_timeout: Option<String>,
}
