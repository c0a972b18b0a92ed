//! The audit log: one JSON line per control call that changes state (start, stop, abort-all, and the
//! admin kill switch), whether it succeeded or was refused.
//!
//! ```json
//! {"time":"2026-11-26T05:01:02.345Z","caller":"gameday","peer":"10.0.0.7:51234","action":"StartExperiment",
//!  "experiment":"exp-0123456789ab","outcome":"ok","spec":{"name":"checkout-5xx","routes":["api"],"percentage":30.0,"duration":"10m","faults":["abort"]}}
//! ```
//!
//! Tokens never appear: the caller is the token's name.

use std::{
    fs::OpenOptions,
    io::{self, Write},
    path::Path,
    sync::Mutex,
    time::SystemTime,
};

use serde_json::{json, Map, Value};

use crate::pb::v1 as pb;

/// Where audit lines go. Writes are serialised; a failed write is reported in the logs and never fails
/// the call being audited.
pub struct AuditLog {
    out: Option<Mutex<Box<dyn Write + Send>>>,
}

impl AuditLog {
    /// No audit log.
    pub fn disabled() -> Self {
        AuditLog { out: None }
    }

    pub fn stderr() -> Self {
        AuditLog { out: Some(Mutex::new(Box::new(io::stderr()))) }
    }

    /// Appends to `path` (created if missing).
    pub fn file(path: &Path) -> io::Result<Self> {
        let f = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(AuditLog { out: Some(Mutex::new(Box::new(f))) })
    }

    /// Opens the destination a config names: `-` or `stderr`, or a file path.
    pub fn open(path: &Path) -> io::Result<Self> {
        match path.to_str() {
            Some("-" | "stderr") => Ok(Self::stderr()),
            _ => Self::file(path),
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.out.is_some()
    }

    /// Writes one line.
    pub fn record(&self, entry: &AuditEntry<'_>) {
        let Some(out) = &self.out else { return };
        let mut line = entry.to_json().to_string();
        line.push('\n');
        let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = out.write_all(line.as_bytes()).and_then(|()| out.flush()) {
            tracing::error!(error = %e, "cannot write the audit log");
        }
    }
}

/// One audited call.
pub struct AuditEntry<'a> {
    /// Token name, `anonymous`, or `admin-endpoint` / `signal` for the kill switches outside gRPC.
    pub caller: &'a str,
    pub peer: &'a str,
    pub action: &'a str,
    /// The experiment acted on; for AbortAll, every id it ended.
    pub experiments: Vec<String>,
    pub spec: Option<&'a pb::ExperimentSpec>,
    pub reason: &'a str,
    /// `Err(message)` when the call was refused.
    pub outcome: Result<(), String>,
}

impl AuditEntry<'_> {
    fn to_json(&self) -> Value {
        let time = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        let mut v = Map::new();
        v.insert("time".into(), json!(time));
        v.insert("caller".into(), json!(self.caller));
        v.insert("peer".into(), json!(self.peer));
        v.insert("action".into(), json!(self.action));
        // AbortAll lists every id it ended (possibly none); other calls name their one experiment (as the
        // caller gave it: bounded).
        match self.experiments.as_slice() {
            many if self.action == "AbortAll" => v.insert("experiments".into(), json!(many)),
            [] => None,
            [one] => v.insert("experiment".into(), json!(crate::text::excerpt(one, 64))),
            many => v.insert("experiments".into(), json!(many)),
        };
        if !self.reason.is_empty() {
            let reason = crate::text::sanitized(self.reason, crate::experiment::MAX_REASON);
            v.insert("reason".into(), json!(reason));
        }
        let outcome = match &self.outcome {
            Ok(()) => json!("ok"),
            Err(e) => json!(format!("refused: {e}")),
        };
        v.insert("outcome".into(), outcome);
        if let Some(spec) = self.spec {
            v.insert("spec".into(), summary(spec));
        }
        Value::Object(v)
    }
}

/// The parts of a spec a reader of the audit log needs: what, where, how much, how long.
pub fn summary(spec: &pb::ExperimentSpec) -> Value {
    let m = spec.r#match.clone().unwrap_or_default();
    let faults: Vec<&str> =
        spec.faults.iter().map(|f| f.kind.as_ref().map_or("none", crate::fault::kind_name)).collect();
    let mut v = Map::new();
    v.insert("name".into(), json!(spec.name));
    v.insert("faults".into(), json!(faults));
    if !m.listeners.is_empty() {
        v.insert("listeners".into(), json!(m.listeners));
    }
    if !m.routes.is_empty() {
        v.insert("routes".into(), json!(m.routes));
    }
    if let Some(p) = spec.percentage {
        v.insert("percentage".into(), json!(p));
    }
    let secs = |d: &pbjson_types::Duration| format!("{}s", d.seconds as f64 + f64::from(d.nanos) / 1e9);
    if let Some(d) = &spec.duration {
        v.insert("duration".into(), json!(secs(d)));
    }
    if let Some(d) = &spec.lease {
        v.insert("lease".into(), json!(secs(d)));
    }
    if spec.dry_run {
        v.insert("dry_run".into(), json!(true));
    }
    if !spec.guards.is_empty() {
        v.insert("guards".into(), json!(spec.guards.len()));
    }
    Value::Object(v)
}
