//! `edgefault inject`: Kubernetes manifests in, the same manifests out with the edgefault sidecar added to
//! the pod templates that ask for it (docs/deploy.md, "Adding the sidecar to your manifests").
//!
//! The input is cut into its documents by [`split`], keeping each one's text; only the documents that
//! change are parsed values written back by [`emit`], the others are copied as they were read. A pass
//! over the workloads ([`workload`]) decides and adds the sidecar ([`sidecar`] builds it); a pass over the
//! Services named by `--service` ([`service`]) points them at it. Every problem of the input is collected
//! with its document, line, object and field path, and any problem means no output at all.
//!
//! This module uses only [`crate::document`]'s bounds; nothing in the crate depends on it.

mod emit;
mod service;
mod sidecar;
mod split;
mod workload;

use std::{
    fmt,
    io::{Read, Write},
    path::Path,
    time::Duration,
};

use serde::Deserialize;
use serde_norway::Value;

pub use emit::EmitError;

/// The image of the injected container when `--image` is not given: the chart's default
/// (`image.repository` `edgefault`, tag the chart's appVersion).
pub const DEFAULT_IMAGE: &str = concat!("edgefault:", env!("CARGO_PKG_VERSION"));
/// Port of the sidecar's proxy listener (`ef-http`), where the Services send the traffic.
pub const DEFAULT_LISTEN_PORT: u16 = 15080;
/// Port of the sidecar's control service, on the pod's loopback only.
pub const DEFAULT_CONTROL_PORT: u16 = 7070;
/// Port of the sidecar's admin endpoint (`ef-admin`): probes and metrics.
pub const DEFAULT_ADMIN_PORT: u16 = 15090;
/// How long fleet experiments outlive a lost controller (`serve --controller-grace`).
pub const DEFAULT_CONTROLLER_GRACE: Duration = Duration::from_secs(30);
/// Largest input read. Each document is also held to [`crate::document::MAX_YAML_BYTES`] and its
/// nesting bound; a whole render (CRDs included) may be larger than one document.
pub const MAX_INPUT_BYTES: usize = 64 * 1024 * 1024;

/// The annotation that asks for the sidecar (`"true"`) or refuses it (`"false"`, even with `--all`).
pub const INJECT_ANNOTATION: &str = "edgefault.io/inject";
/// The annotation that names the application's port (a number or a container port's name).
pub const APP_PORT_ANNOTATION: &str = "edgefault.io/app-port";
/// The pod label that the controller's NetworkPolicy admits (set with `--controller`).
pub const SIDECAR_LABEL: &str = "edgefault.io/sidecar";
/// The name of the injected container; a pod template that has one is left as it is.
pub const CONTAINER_NAME: &str = "edgefault";
/// The named port of the sidecar's proxy listener, which `--service` points Services at.
pub const HTTP_PORT_NAME: &str = "ef-http";
/// The named port of the sidecar's admin endpoint.
pub const ADMIN_PORT_NAME: &str = "ef-admin";

/// What to inject, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Every workload, not only those annotated `edgefault.io/inject: "true"`.
    pub all: bool,
    pub image: String,
    /// The application's port for every workload (else the annotation, else the first container port).
    pub app_port: Option<u16>,
    pub listen_port: u16,
    pub control_port: u16,
    pub admin_port: u16,
    /// Fleet wiring: the sidecars subscribe to this controller.
    pub fleet: Option<Fleet>,
    /// Services whose ports that target the application go through the sidecar instead.
    pub services: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            all: false,
            image: DEFAULT_IMAGE.into(),
            app_port: None,
            listen_port: DEFAULT_LISTEN_PORT,
            control_port: DEFAULT_CONTROL_PORT,
            admin_port: DEFAULT_ADMIN_PORT,
            fleet: None,
            services: Vec::new(),
        }
    }
}

/// How the injected sidecars join a fleet controller (docs/fleet.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fleet {
    /// `http://host:port` (or `https://`).
    pub controller: String,
    pub grace: Duration,
    /// The Secret holding the sidecar token, mounted as a file.
    pub token_secret: Option<SecretKey>,
}

/// A key of a Secret: `NAME[:KEY]`, the key defaulting to `sidecar-token` (the chart's controller Secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretKey {
    pub name: String,
    pub key: String,
}

impl SecretKey {
    /// Parses `NAME[:KEY]` (a clap value parser).
    pub fn parse(s: &str) -> Result<SecretKey, String> {
        let (name, key) = s.split_once(':').unwrap_or((s, "sidecar-token"));
        if !is_dns_subdomain(name) {
            return Err(format!(
                "{name:?} is not a Secret name (lowercase letters, digits, '-' and '.', at most 253 characters)"
            ));
        }
        if key.is_empty() || key.len() > 253 || !key.chars().all(|c| c.is_ascii_alphanumeric() || "-._".contains(c)) {
            return Err(format!("{key:?} is not a Secret key (letters, digits, '-', '_' and '.')"));
        }
        Ok(SecretKey { name: name.into(), key: key.into() })
    }
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|part| {
            !part.is_empty()
                && part.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

/// A flag value that cannot work.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{flag}: {message}")]
pub struct OptionsError {
    pub flag: &'static str,
    pub message: String,
}

impl Options {
    /// Checks the values before any input is read.
    pub fn check(&self) -> Result<(), OptionsError> {
        let fail = |flag, message: String| Err(OptionsError { flag, message });
        if self.image.is_empty() || self.image.chars().any(char::is_whitespace) {
            return fail("--image", format!("{:?} is not an image reference", self.image));
        }
        let ports = self.sidecar_ports();
        for (i, (flag, port)) in ports.iter().enumerate() {
            if *port < 1024 {
                return fail(flag, format!("{port} is below 1024: the sidecar runs without capabilities"));
            }
            if let Some((other, _)) = ports.iter().take(i).find(|(_, p)| p == port) {
                return fail(flag, format!("{port} is also {other}"));
            }
        }
        if let Some(app) = self.app_port {
            if app == 0 {
                return fail("--app-port", "must be a port, 1 to 65535".into());
            }
            if let Some((flag, _)) = ports.iter().find(|(_, p)| *p == app) {
                return fail("--app-port", format!("{app} is also the sidecar's {flag}"));
            }
        }
        if let Some(fleet) = &self.fleet {
            let uri = fleet.controller.parse::<http::Uri>().ok();
            let usable = uri.as_ref().is_some_and(|u| {
                matches!(u.scheme_str(), Some("http" | "https"))
                    && u.authority().is_some()
                    && u.path_and_query().is_none_or(|p| p.as_str() == "/" || p.as_str().is_empty())
            });
            if !usable {
                return fail(
                    "--controller",
                    format!("{:?} is not an http:// or https:// URL (http://host:port)", fleet.controller),
                );
            }
        }
        for name in &self.services {
            if !is_dns_subdomain(name) {
                return fail("--service", format!("{name:?} is not a Service name"));
            }
        }
        Ok(())
    }

    /// The sidecar's own ports with the flag that sets each.
    fn sidecar_ports(&self) -> [(&'static str, u16); 3] {
        [("--listen-port", self.listen_port), ("--admin-port", self.admin_port), ("--control-port", self.control_port)]
    }
}

/// The manifests with the sidecar added, and what was done to each workload and Service.
#[derive(Debug)]
pub struct Injected {
    pub text: String,
    pub outcomes: Vec<Outcome>,
}

/// What happened to one workload or Service; printed one per line on stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Injected {
        object: String,
        app_port: u16,
        native: bool,
    },
    AlreadyInjected {
        object: String,
    },
    NotAskedFor {
        object: String,
    },
    OptedOut {
        object: String,
    },
    /// Asked for, but not a kind this command handles.
    UnknownKind {
        object: String,
    },
    Retargeted {
        object: String,
        ports: Vec<String>,
    },
    AlreadyRetargeted {
        object: String,
    },
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Injected { object, app_port, native: false } => {
                write!(f, "injected: {object} (app port {app_port})")
            }
            Outcome::Injected { object, app_port, native: true } => {
                write!(f, "injected: {object} (app port {app_port}; a native sidecar in initContainers, so the pods still complete)")
            }
            Outcome::AlreadyInjected { object } => write!(f, "skipped: {object} (already has an {CONTAINER_NAME} container)"),
            Outcome::NotAskedFor { object } => {
                write!(f, "skipped: {object} (not asked for: no {INJECT_ANNOTATION}: \"true\"; --all takes it)")
            }
            Outcome::OptedOut { object } => write!(f, "skipped: {object} ({INJECT_ANNOTATION}: \"false\")"),
            Outcome::UnknownKind { object } => write!(
                f,
                "skipped: {object} (annotated {INJECT_ANNOTATION}, but only Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob and Pod are injected)"
            ),
            Outcome::Retargeted { object, ports } => {
                write!(f, "service: {object}: port {} now targets {HTTP_PORT_NAME}", ports.join(", "))
            }
            Outcome::AlreadyRetargeted { object } => write!(f, "service: {object}: already targets {HTTP_PORT_NAME}"),
        }
    }
}

/// A problem of the input, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The document, or `None` for a problem of the input as a whole (a `--service` it lacks).
    pub at: Option<Place>,
    pub error: ManifestError,
}

/// Where in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// 1-based index of the document in the stream.
    pub document: usize,
    /// 1-based line of the input where the document starts (a YAML error's message has its own lines).
    pub line: usize,
    /// `Kind namespace/name` of the object, when it is known.
    pub object: Option<String>,
    /// Field path in the document (`spec.template.spec.containers`; `items[2].…` in a List).
    pub path: Option<String>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(at) = &self.at {
            write!(f, "document {} (line {})", at.document, at.line)?;
            if let Some(object) = &at.object {
                write!(f, ", {object}")?;
            }
            if let Some(path) = &at.path {
                write!(f, ", {path}")?;
            }
            f.write_str(": ")?;
        }
        write!(f, "{}", self.error)
    }
}

/// What is wrong with a document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("not valid YAML: {0}")]
    Yaml(String),
    #[error("{0}")]
    Bounds(String),
    #[error("holds more than one YAML document (a `...` line ends one): separate them with `---`")]
    SeveralDocuments,
    #[error("must be {expected}, found {found}")]
    Shape { expected: &'static str, found: &'static str },
    #[error("the pod template has no containers")]
    NoContainers,
    #[error("{INJECT_ANNOTATION} must be \"true\" or \"false\", found {found}")]
    InjectAnnotation { found: String },
    #[error("{APP_PORT_ANNOTATION} must be a port number or the name of a container port of the pod, found {found}")]
    AppPortAnnotation { found: String },
    #[error("no app port: the first container ({container}) declares no containerPort; give --app-port or the annotation {APP_PORT_ANNOTATION}")]
    NoAppPort { container: String },
    #[error("port {port} of the sidecar ({flag}) is already container {container}'s port{}; choose another with {flag}", name.as_ref().map(|n| format!(" {n}")).unwrap_or_default())]
    PortClash { port: u16, flag: &'static str, container: String, name: Option<String> },
    #[error("the app port {port} is the sidecar's {flag}; choose another with {flag}")]
    AppPortClash { port: u16, flag: &'static str },
    #[error("the pod already has a {what} named {name} (container {container}); the sidecar needs that name")]
    NameTaken { what: &'static str, name: String, container: String },
    #[error("the pod already has a volume named {name}; the sidecar needs that name")]
    VolumeTaken { name: String },
    #[error("--service {name}: no Service named {name} in the input")]
    ServiceNotFound { name: String },
    #[error("--service: its selector matches no pod template of the input that gets the sidecar")]
    ServiceSelectsNothing,
    #[error("--service: it also selects the pods of {other}, which have no sidecar: pointing it at {HTTP_PORT_NAME} would take them out of the Service")]
    ServiceMixed { other: String },
    #[error("--service: it selects the pods of {other}, whose {CONTAINER_NAME} container was not added by edgefault inject (it has no port {HTTP_PORT_NAME}): point the Service at that container's port yourself")]
    ServiceForeignSidecar { other: String },
    #[error("--service: no TCP port of it targets the app port ({ports}) or {HTTP_PORT_NAME}")]
    ServiceNoPort { ports: String },
    #[error("cannot write the changed document back: {0}")]
    Unwritable(#[from] EmitError),
}

/// Why `edgefault inject` wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    #[error(transparent)]
    Options(#[from] OptionsError),
    #[error("{input}: {0}", .problems.first().map(ToString::to_string).unwrap_or_default())]
    One { input: String, problems: Vec<Problem> },
    #[error("{input}: {} problems, nothing written:{}", problems.len(), problems.iter().map(|p| format!("\n  {p}")).collect::<String>())]
    Many { input: String, problems: Vec<Problem> },
    #[error("{input}: cannot read it: {source}")]
    Read { input: String, source: std::io::Error },
    #[error("{input}: larger than the {MAX_INPUT_BYTES} bytes edgefault inject reads")]
    TooLarge { input: String },
    #[error("{output}: cannot write it: {source}")]
    Write { output: String, source: std::io::Error },
}

impl InjectError {
    /// The problems of the input, when that is what went wrong.
    pub fn problems(&self) -> &[Problem] {
        match self {
            InjectError::One { problems, .. } | InjectError::Many { problems, .. } => problems,
            _ => &[],
        }
    }

    fn of(input: &str, problems: Vec<Problem>) -> InjectError {
        let input = input.to_owned();
        if problems.len() == 1 {
            InjectError::One { input, problems }
        } else {
            InjectError::Many { input, problems }
        }
    }
}

/// One document of the input: its text, and its value once parsed.
struct Document<'a> {
    chunk: split::Chunk<'a>,
    /// 1-based.
    index: usize,
    /// `None` for a document with no YAML node (empty, comments only).
    value: Option<Value>,
    changed: bool,
}

impl Document<'_> {
    fn place(&self, object: Option<String>, path: Option<String>) -> Place {
        Place { document: self.index, line: self.chunk.line, object, path }
    }
}

/// Adds the sidecar to the manifests of `text`. Nothing is returned but problems when the input has any.
pub fn inject(text: &str, options: &Options) -> Result<Injected, Vec<Problem>> {
    let mut docs = parse(text)?;
    let mut problems = Vec::new();
    let mut outcomes = Vec::new();
    let mut templates = Vec::new();

    for doc in &mut docs {
        let mut changed = false;
        let mut found = Vec::new();
        for (prefix, object) in objects(&mut doc.value) {
            match workload::visit(object, options) {
                Ok(None) => {}
                Ok(Some(w)) => {
                    changed |= w.changed;
                    outcomes.push(w.outcome);
                    templates.extend(w.template);
                }
                Err(errs) => {
                    let label = label(object);
                    found.extend(errs.into_iter().map(|(path, error)| (label.clone(), join(&prefix, path), error)));
                }
            }
        }
        doc.changed |= changed;
        for (object, path, error) in found {
            problems.push(Problem { at: Some(doc.place(object, path)), error });
        }
    }

    for name in &options.services {
        let mut seen = false;
        for doc in &mut docs {
            let (index, line) = (doc.index, doc.chunk.line);
            let mut changed = false;
            for (prefix, object) in objects(&mut doc.value) {
                if !service::is_named(object, name) {
                    continue;
                }
                seen = true;
                match service::retarget(object, &templates) {
                    Ok(outcome) => {
                        changed |= matches!(outcome, Outcome::Retargeted { .. });
                        outcomes.push(outcome);
                    }
                    Err((path, error)) => {
                        let at = Place { document: index, line, object: label(object), path: join(&prefix, path) };
                        problems.push(Problem { at: Some(at), error });
                    }
                }
            }
            doc.changed |= changed;
        }
        if !seen {
            problems.push(Problem { at: None, error: ManifestError::ServiceNotFound { name: name.clone() } });
        }
    }

    let mut out = String::with_capacity(text.len() + 4096);
    for doc in &docs {
        match (&doc.value, doc.changed) {
            (Some(value), true) => match emit::to_yaml(value) {
                Ok(yaml) => write_changed(&mut out, &doc.chunk, &yaml),
                Err(e) => problems.push(Problem { at: Some(doc.place(None, None)), error: e.into() }),
            },
            _ => out.push_str(doc.chunk.text),
        }
    }
    if problems.is_empty() {
        Ok(Injected { text: out, outcomes })
    } else {
        Err(problems)
    }
}

/// `Kind namespace/name` of an object; `None` when it has no `kind` (not a Kubernetes object).
fn label(object: &Value) -> Option<String> {
    let kind = object.get("kind")?.as_str()?;
    let meta = object.get("metadata");
    let field = |key: &str| meta.and_then(|m| m.get(key)).and_then(Value::as_str);
    let name = field("name").map(str::to_owned).or_else(|| field("generateName").map(|g| format!("{g}*")));
    let name = name.unwrap_or_else(|| "(no name)".into());
    Some(match field("namespace") {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    })
}

/// What a value is, for messages.
fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

fn join(prefix: &str, path: Option<String>) -> Option<String> {
    match (prefix.is_empty(), path) {
        (true, path) => path,
        (false, None) => Some(prefix.to_owned()),
        (false, Some(p)) => Some(format!("{prefix}.{p}")),
    }
}

/// The objects of a document: the document itself, or each item of a `kind: List`, with the path prefix
/// of each.
fn objects(value: &mut Option<Value>) -> Vec<(String, &mut Value)> {
    let Some(value) = value else { return Vec::new() };
    let is_list =
        value.get("kind").and_then(Value::as_str) == Some("List") && value.get("items").is_some_and(Value::is_sequence);
    if !is_list {
        return vec![(String::new(), value)];
    }
    match value.get_mut("items") {
        Some(Value::Sequence(items)) => {
            items.iter_mut().enumerate().map(|(i, item)| (format!("items[{i}]"), item)).collect()
        }
        _ => Vec::new(),
    }
}

/// A changed document: its `---` line, the comments above its first line, then the new YAML (with the
/// document's own line breaks).
fn write_changed(out: &mut String, chunk: &split::Chunk<'_>, yaml: &str) {
    let separator = chunk.separator.trim_end_matches(['\r', '\n']);
    let crlf = chunk.text.contains("\r\n");
    let newline = if crlf { "\r\n" } else { "\n" };
    // A byte-order mark at the very start stays there, however the document begins.
    let (bom, body) = match chunk.body.strip_prefix('\u{feff}') {
        Some(rest) if chunk.head.is_empty() && chunk.separator.is_empty() => ("\u{feff}", rest),
        _ => ("", chunk.body),
    };
    out.push_str(bom);
    out.push_str(chunk.head);
    if !separator.is_empty() {
        // `--- # comment` stays; anything else after `---` was part of the document, now written below.
        let comment = separator.trim_start_matches('-').trim_start();
        out.push_str(if comment.starts_with('#') || comment.is_empty() { separator } else { "---" });
        out.push_str(newline);
    }
    out.push_str(split::leading_comments(body));
    if crlf {
        out.push_str(&yaml.replace('\n', "\r\n"));
    } else {
        out.push_str(yaml);
    }
}

/// Every document of the input, parsed; all the YAML problems when there are any.
fn parse(text: &str) -> Result<Vec<Document<'_>>, Vec<Problem>> {
    let mut docs = Vec::new();
    let mut problems = Vec::new();
    for (i, chunk) in split::split(text).into_iter().enumerate() {
        let index = i + 1;
        match parse_chunk(chunk.text) {
            Ok(value) => docs.push(Document { chunk, index, value, changed: false }),
            Err(error) => problems.push(Problem {
                at: Some(Place { document: index, line: chunk.line, object: None, path: None }),
                error: shift_lines(error, chunk.line),
            }),
        }
    }
    if problems.is_empty() {
        Ok(docs)
    } else {
        Err(problems)
    }
}

/// The one YAML node of a chunk (`None` when it has none). Errors count lines from the chunk's start.
fn parse_chunk(text: &str) -> Result<Option<Value>, ManifestError> {
    crate::document::check_yaml_bounds(text).map_err(|e| ManifestError::Bounds(e.to_string()))?;
    let mut found = None;
    // The parser misreads a byte-order mark in a string (it ends the first document after one line).
    // After an error it yields that error again forever: the first one returns.
    for doc in serde_norway::Deserializer::from_str(text.trim_start_matches('\u{feff}')) {
        let mut value = Value::deserialize(doc).map_err(|e| ManifestError::Yaml(e.to_string()))?;
        if found.is_some() {
            return Err(ManifestError::SeveralDocuments);
        }
        value.apply_merge().map_err(|e| ManifestError::Yaml(e.to_string()))?;
        found = Some(value);
    }
    Ok(found.filter(|v| !v.is_null()))
}

/// The parser counts lines from the chunk's start; the messages count them from the input's.
fn shift_lines(error: ManifestError, first_line: usize) -> ManifestError {
    let shift = |message: String| {
        let mut out = String::with_capacity(message.len());
        let mut rest = message.as_str();
        while let Some(at) = rest.find("line ") {
            let (head, tail) = rest.split_at(at + "line ".len());
            out.push_str(head);
            let digits = tail.len() - tail.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            let (number, after) = tail.split_at(digits);
            match number.parse::<usize>() {
                Ok(n) => out.push_str(&(n + first_line - 1).to_string()),
                Err(_) => out.push_str(number),
            }
            rest = after;
        }
        out.push_str(rest);
        out
    };
    match error {
        ManifestError::Yaml(m) => ManifestError::Yaml(shift(m)),
        ManifestError::Bounds(m) => ManifestError::Bounds(shift(m)),
        other => other,
    }
}

/// `edgefault inject`: reads `input` (`-`: the standard input), writes the manifests to `output` (`None` or
/// `-`: `stdout`) and returns what was done; on any problem, writes nothing.
pub fn run(
    input: &Path,
    output: Option<&Path>,
    options: &Options,
    stdout: &mut dyn Write,
) -> Result<Vec<Outcome>, InjectError> {
    options.check()?;
    let stdin = input == Path::new("-");
    let name = if stdin { "<stdin>".to_owned() } else { input.display().to_string() };
    let text = if stdin {
        read_bounded(std::io::stdin().lock(), &name)?
    } else {
        let file = std::fs::File::open(input).map_err(|source| InjectError::Read { input: name.clone(), source })?;
        read_bounded(file, &name)?
    };
    let injected = inject(&text, options).map_err(|problems| InjectError::of(&name, problems))?;
    match output.filter(|o| *o != Path::new("-")) {
        Some(path) => std::fs::write(path, &injected.text)
            .map_err(|source| InjectError::Write { output: path.display().to_string(), source })?,
        None => stdout
            .write_all(injected.text.as_bytes())
            .and_then(|()| stdout.flush())
            .map_err(|source| InjectError::Write { output: "<stdout>".into(), source })?,
    }
    Ok(injected.outcomes)
}

fn read_bounded(reader: impl Read, name: &str) -> Result<String, InjectError> {
    let mut text = String::new();
    let limit = u64::try_from(MAX_INPUT_BYTES).unwrap_or(u64::MAX).saturating_add(1);
    reader.take(limit).read_to_string(&mut text).map_err(|source| InjectError::Read { input: name.into(), source })?;
    if text.len() > MAX_INPUT_BYTES {
        return Err(InjectError::TooLarge { input: name.into() });
    }
    Ok(text)
}

#[cfg(test)]
mod tests;
