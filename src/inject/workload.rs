//! The workloads: where each kind keeps its pod template, whether it asks for the sidecar, its app port,
//! the checks that the sidecar fits in the pod, and the change itself.

use serde_norway::{Mapping, Value};

use super::{
    kind_name, label,
    service::{PodTemplate, Sidecar},
    sidecar, ManifestError, Options, Outcome, ADMIN_PORT_NAME, APP_PORT_ANNOTATION, CONTAINER_NAME, HTTP_PORT_NAME,
    INJECT_ANNOTATION, SIDECAR_LABEL,
};

/// Problems of one object, each at its field path.
pub type Errors = Vec<(Option<String>, ManifestError)>;

/// What a workload became.
pub struct Visited {
    pub changed: bool,
    pub outcome: Outcome,
    /// Its pods, for `--service`.
    pub template: Option<PodTemplate>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Pod,
    Deployment,
    StatefulSet,
    DaemonSet,
    ReplicaSet,
    Job,
    CronJob,
}

impl Kind {
    /// The kinds injected, by their API group: a custom resource that reuses a name is not one of them.
    fn of(object: &Value) -> Option<Kind> {
        let kind = object.get("kind")?.as_str()?;
        let api_version = object.get("apiVersion")?.as_str()?;
        let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
        Some(match (kind, group) {
            ("Pod", "") => Kind::Pod,
            ("Deployment", "apps" | "extensions") => Kind::Deployment,
            ("StatefulSet", "apps") => Kind::StatefulSet,
            ("DaemonSet", "apps" | "extensions") => Kind::DaemonSet,
            ("ReplicaSet", "apps" | "extensions") => Kind::ReplicaSet,
            ("Job", "batch") => Kind::Job,
            ("CronJob", "batch") => Kind::CronJob,
            _ => return None,
        })
    }

    /// Where the pod template is: the object itself for a Pod.
    fn template_path(self) -> &'static [&'static str] {
        match self {
            Kind::Pod => &[],
            Kind::CronJob => &["spec", "jobTemplate", "spec", "template"],
            Kind::Deployment | Kind::StatefulSet | Kind::DaemonSet | Kind::ReplicaSet | Kind::Job => {
                &["spec", "template"]
            }
        }
    }
}

fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, key| v.get(*key))
}

fn at_mut<'a>(v: &'a mut Value, path: &[&str]) -> Option<&'a mut Value> {
    path.iter().try_fold(v, |v, key| v.get_mut(*key))
}

/// `base` and `rest` as one field path.
fn path(base: &str, rest: &str) -> String {
    if base.is_empty() {
        rest.to_owned()
    } else {
        format!("{base}.{rest}")
    }
}

fn shape(path: String, expected: &'static str, found: &Value) -> (Option<String>, ManifestError) {
    (Some(path), ManifestError::Shape { expected, found: kind_name(found) })
}

/// A string annotation of the object whose `metadata` is at `base`, with its field path; an annotation
/// that is not a string (unquoted `true`, a number) is a problem, as it would be for the API server.
fn annotation<'a>(object: &'a Value, base: &str, key: &str, errors: &mut Errors) -> Option<(&'a str, String)> {
    let value = object.get("metadata")?.get("annotations")?.get(key)?;
    let at = path(base, &format!("metadata.annotations[{key}]"));
    match value {
        Value::String(s) => Some((s, at)),
        Value::Null => None,
        other => {
            errors.push((
                Some(at),
                ManifestError::Shape {
                    expected: "a string (annotations are strings: quote it)",
                    found: kind_name(other),
                },
            ));
            None
        }
    }
}

/// An annotation of the pod template, else of the workload (the same object for a Pod).
fn pod_annotation<'a>(
    object: &'a Value,
    template: &'a Value,
    t_path: &str,
    key: &str,
    errors: &mut Errors,
) -> Option<(&'a str, String)> {
    annotation(template, t_path, key, errors).or_else(|| {
        if t_path.is_empty() {
            None
        } else {
            annotation(object, "", key, errors)
        }
    })
}

/// A port of one of the pod's containers.
struct Port {
    container: String,
    number: u16,
    name: Option<String>,
}

/// The pod template's containers: whether one is the sidecar, and every declared port.
struct Pod {
    first_container: String,
    /// Where the first container's ports are (or would be).
    first_ports_path: Option<String>,
    first_port: Option<u16>,
    ports: Vec<Port>,
    sidecar: Option<Sidecar>,
    volumes: Vec<String>,
}

/// Reads the pod spec at `spec_path` (`spec`, `spec.template.spec`, …).
fn read_pod(spec: &Value, spec_path: &str, errors: &mut Errors) -> Option<Pod> {
    if !spec.is_mapping() {
        errors.push(shape(spec_path.to_owned(), "a mapping (a pod spec)", spec));
        return None;
    }
    let mut pod = Pod {
        first_container: String::new(),
        first_ports_path: None,
        first_port: None,
        ports: Vec::new(),
        sidecar: None,
        volumes: Vec::new(),
    };
    let mut any = false;
    for list in ["containers", "initContainers"] {
        let containers = match spec.get(list) {
            None | Some(Value::Null) => continue,
            Some(Value::Sequence(s)) => s,
            Some(other) => {
                errors.push(shape(path(spec_path, list), "a list of containers", other));
                continue;
            }
        };
        for (i, c) in containers.iter().enumerate() {
            let c_path = path(spec_path, &format!("{list}[{i}]"));
            if !c.is_mapping() {
                errors.push(shape(c_path, "a mapping (a container)", c));
                continue;
            }
            let name = c.get("name").and_then(Value::as_str).map_or_else(|| format!("{list}[{i}]"), str::to_owned);
            let ports: &[Value] = match c.get("ports") {
                None | Some(Value::Null) => &[],
                Some(Value::Sequence(s)) => s,
                Some(other) => {
                    errors.push(shape(format!("{c_path}.ports"), "a list of ports", other));
                    continue;
                }
            };
            let mut first = None;
            for (j, p) in ports.iter().enumerate() {
                let number = p.get("containerPort").and_then(Value::as_u64).and_then(|n| u16::try_from(n).ok());
                let Some(number) = number.filter(|n| *n > 0) else {
                    let found = p.get("containerPort").unwrap_or(&Value::Null);
                    errors.push(shape(format!("{c_path}.ports[{j}].containerPort"), "a port number", found));
                    continue;
                };
                first = first.or(Some(number));
                let port_name = p.get("name").and_then(Value::as_str).map(str::to_owned);
                pod.ports.push(Port { container: name.clone(), number, name: port_name });
            }
            if name == CONTAINER_NAME {
                let ours = ports.iter().any(|p| p.get("name").and_then(Value::as_str) == Some(HTTP_PORT_NAME));
                pod.sidecar =
                    Some(if ours { Sidecar::Ours { app_port: sidecar::upstream_port(c) } } else { Sidecar::Foreign });
            }
            if list == "containers" && !any {
                any = true;
                pod.first_container = name;
                pod.first_ports_path = Some(format!("{c_path}.ports"));
                pod.first_port = first;
            }
        }
    }
    if !any {
        errors.push((Some(path(spec_path, "containers")), ManifestError::NoContainers));
    }
    if let Some(volumes) = spec.get("volumes").and_then(Value::as_sequence) {
        pod.volumes = volumes.iter().filter_map(|v| v.get("name")?.as_str().map(str::to_owned)).collect();
    }
    Some(pod)
}

/// Looks at one object; `None` when it is no workload of interest.
pub fn visit(object: &mut Value, options: &Options) -> Result<Option<Visited>, Errors> {
    let Some(object_label) = label(object) else { return Ok(None) };
    let mut errors = Errors::new();
    let Some(kind) = Kind::of(object) else {
        let asked = annotation(object, "", INJECT_ANNOTATION, &mut errors).is_some_and(|(v, _)| v == "true");
        let outcome = Outcome::UnknownKind { object: object_label };
        return Ok(asked.then_some(Visited { changed: false, outcome, template: None }));
    };
    let t_path = kind.template_path().join(".");
    let template = match at(object, kind.template_path()) {
        Some(t) if t.is_mapping() => t,
        broken => {
            // Only a workload that gets the sidecar needs a pod template.
            let asked = annotation(object, "", INJECT_ANNOTATION, &mut errors).map(|(v, _)| v);
            let outcome = match asked {
                _ if !errors.is_empty() => return Err(errors),
                Some("false") => Outcome::OptedOut { object: object_label },
                None if !options.all => Outcome::NotAskedFor { object: object_label },
                _ => {
                    return Err(vec![match broken {
                        Some(t) => shape(t_path, "a mapping (a pod template)", t),
                        None => (Some(path(&t_path, "spec.containers")), ManifestError::NoContainers),
                    }])
                }
            };
            return Ok(Some(Visited { changed: false, outcome, template: None }));
        }
    };
    let asked = match pod_annotation(object, template, &t_path, INJECT_ANNOTATION, &mut errors) {
        None => None,
        Some(("true", _)) => Some(true),
        Some(("false", _)) => Some(false),
        Some((other, at)) => {
            errors.push((Some(at), ManifestError::InjectAnnotation { found: format!("{other:?}") }));
            None
        }
    };
    let app_port_note =
        pod_annotation(object, template, &t_path, APP_PORT_ANNOTATION, &mut errors).map(|(v, at)| (v.to_owned(), at));
    if !errors.is_empty() {
        return Err(errors);
    }
    // The pod's shape matters only to a pod template that gets the sidecar.
    let spec_path = path(&t_path, "spec");
    let mut pod_errors = Errors::new();
    let pod = match template.get("spec") {
        Some(spec) => read_pod(spec, &spec_path, &mut pod_errors),
        None => {
            pod_errors.push((Some(path(&spec_path, "containers")), ManifestError::NoContainers));
            None
        }
    };
    let namespace = at(object, &["metadata", "namespace"]).and_then(Value::as_str).map(str::to_owned);
    let native = matches!(kind, Kind::Job | Kind::CronJob)
        || matches!(at(template, &["spec", "restartPolicy"]).and_then(Value::as_str), Some("Never" | "OnFailure"));
    let existing = pod.as_ref().and_then(|p| p.sidecar.clone());

    let outcome = if asked == Some(false) {
        Outcome::OptedOut { object: object_label.clone() }
    } else if existing.is_some() {
        Outcome::AlreadyInjected { object: object_label.clone() }
    } else if asked.is_none() && !options.all {
        Outcome::NotAskedFor { object: object_label.clone() }
    } else {
        let Some(pod) = pod.filter(|_| pod_errors.is_empty()) else { return Err(pod_errors) };
        let app_port = app_port(&pod, options, app_port_note.as_ref()).map_err(|e| vec![e])?;
        check_fit(&pod, options, app_port, &spec_path)?;
        let template = at_mut(object, kind.template_path())
            .ok_or_else(|| vec![(Some(t_path.clone()), ManifestError::NoContainers)])?;
        add(template, options, app_port, native, &t_path).map_err(|e| vec![e])?;
        let names = app_port_names(&pod, Some(app_port));
        let sidecar = Sidecar::Ours { app_port: Some(app_port) };
        let template = pods(object_label.clone(), namespace, at(object, kind.template_path()), names, sidecar);
        let outcome = Outcome::Injected { object: object_label, app_port, native };
        return Ok(Some(Visited { changed: true, outcome, template: Some(template) }));
    };
    let sidecar = existing.unwrap_or(Sidecar::Without);
    let names = match (&sidecar, &pod) {
        (Sidecar::Ours { app_port }, Some(pod)) => app_port_names(pod, *app_port),
        _ => Vec::new(),
    };
    let template = pods(object_label, namespace, Some(template), names, sidecar);
    Ok(Some(Visited { changed: false, outcome, template: Some(template) }))
}

/// The names the pod's containers give the app port.
fn app_port_names(pod: &Pod, app_port: Option<u16>) -> Vec<String> {
    pod.ports.iter().filter(|p| Some(p.number) == app_port).filter_map(|p| p.name.clone()).collect()
}

fn pods(
    object: String,
    namespace: Option<String>,
    template: Option<&Value>,
    app_port_names: Vec<String>,
    sidecar: Sidecar,
) -> PodTemplate {
    let labels = template
        .and_then(|t| t.get("metadata")?.get("labels")?.as_mapping())
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.as_str()?.to_owned()))).collect())
        .unwrap_or_default();
    PodTemplate { object, namespace, labels, app_port_names, sidecar }
}

/// The app port: `--app-port`, else the annotation (a number, or a container port's name), else the first
/// container's first port.
fn app_port(
    pod: &Pod,
    options: &Options,
    note: Option<&(String, String)>,
) -> Result<u16, (Option<String>, ManifestError)> {
    if let Some(port) = options.app_port {
        return Ok(port);
    }
    if let Some((note, at)) = note {
        let note = note.as_str();
        let by_number = note.parse::<u16>().ok().filter(|n| *n > 0);
        let by_name = || pod.ports.iter().find(|p| p.name.as_deref() == Some(note)).map(|p| p.number);
        return by_number
            .or_else(by_name)
            .ok_or_else(|| (Some(at.clone()), ManifestError::AppPortAnnotation { found: format!("{note:?}") }));
    }
    pod.first_port.ok_or_else(|| {
        (pod.first_ports_path.clone(), ManifestError::NoAppPort { container: pod.first_container.clone() })
    })
}

/// The sidecar's ports, port names and volumes are free in the pod.
fn check_fit(pod: &Pod, options: &Options, app_port: u16, spec_path: &str) -> Result<(), Errors> {
    let mut errors = Errors::new();
    let here = || Some(path(spec_path, "containers"));
    for (flag, port) in options.sidecar_ports() {
        if let Some(p) = pod.ports.iter().find(|p| p.number == port) {
            errors.push((
                here(),
                ManifestError::PortClash { port, flag, container: p.container.clone(), name: p.name.clone() },
            ));
        } else if port == app_port {
            errors.push((here(), ManifestError::AppPortClash { port, flag }));
        }
    }
    for name in [HTTP_PORT_NAME, ADMIN_PORT_NAME] {
        if let Some(p) = pod.ports.iter().find(|p| p.name.as_deref() == Some(name)) {
            errors.push((
                here(),
                ManifestError::NameTaken { what: "port", name: name.into(), container: p.container.clone() },
            ));
        }
    }
    if let Some(fleet) = &options.fleet {
        for name in sidecar::volume_names(fleet) {
            if pod.volumes.iter().any(|v| v == name) {
                errors.push((Some(path(spec_path, "volumes")), ManifestError::VolumeTaken { name: (*name).into() }));
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// The list at `key` of a mapping, made when it is missing (or null).
fn list_at<'a>(m: &'a mut Mapping, key: &str) -> Option<&'a mut Vec<Value>> {
    let k = Value::String(key.into());
    if m.get(&k).is_none_or(Value::is_null) {
        m.insert(k.clone(), Value::Sequence(Vec::new()));
    }
    m.get_mut(&k)?.as_sequence_mut()
}

/// The mapping at `key` of a mapping, made when it is missing (or null).
fn mapping_at<'a>(m: &'a mut Mapping, key: &str) -> Option<&'a mut Mapping> {
    let k = Value::String(key.into());
    if m.get(&k).is_none_or(Value::is_null) {
        m.insert(k.clone(), Value::Mapping(Mapping::new()));
    }
    m.get_mut(&k)?.as_mapping_mut()
}

/// Adds the container (and, with a controller, the volumes and the pod label) to a pod template whose
/// shape [`read_pod`] checked.
fn add(
    template: &mut Value,
    options: &Options,
    app_port: u16,
    native: bool,
    t_path: &str,
) -> Result<(), (Option<String>, ManifestError)> {
    let bad = |what: &'static str| {
        (Some(t_path.to_owned()), ManifestError::Shape { expected: what, found: "something else" })
    };
    let t = template.as_mapping_mut().ok_or_else(|| bad("a mapping (a pod template)"))?;
    if options.fleet.is_some() {
        let meta = mapping_at(t, "metadata").ok_or_else(|| bad("a mapping (metadata)"))?;
        let labels = mapping_at(meta, "labels").ok_or_else(|| bad("a mapping (labels)"))?;
        labels.insert(Value::String(SIDECAR_LABEL.into()), Value::String("true".into()));
    }
    let spec = mapping_at(t, "spec").ok_or_else(|| bad("a mapping (a pod spec)"))?;
    let list = if native { "initContainers" } else { "containers" };
    list_at(spec, list).ok_or_else(|| bad("a list of containers"))?.push(sidecar::container(options, app_port, native));
    if let Some(fleet) = &options.fleet {
        list_at(spec, "volumes").ok_or_else(|| bad("a list of volumes"))?.extend(sidecar::volumes(fleet));
    }
    Ok(())
}
