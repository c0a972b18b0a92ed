//! `--service NAME`: the ports of a Service that target the application go to the sidecar (`ef-http`)
//! instead, once every pod template of the input that the Service selects has the sidecar.

use serde_norway::Value;

use super::{label, ManifestError, Outcome, HTTP_PORT_NAME};

/// A pod template of the input, as a Service's selector sees it.
#[derive(Debug, Clone)]
pub struct PodTemplate {
    /// `Kind namespace/name` of its workload.
    pub object: String,
    pub namespace: Option<String>,
    pub labels: Vec<(String, String)>,
    /// The names the pod's containers give the app port.
    pub app_port_names: Vec<String>,
    pub sidecar: Sidecar,
}

/// Whether a pod template has the sidecar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sidecar {
    Without,
    /// Added by `edgefault inject` (now or by an earlier run): it has the port `ef-http`, and forwards to
    /// the app port of its `--upstream`.
    Ours {
        app_port: Option<u16>,
    },
    /// A container named `edgefault` set up some other way (the chart's templates).
    Foreign,
}

/// Whether `object` is the Service `name`.
pub fn is_named(object: &Value, name: &str) -> bool {
    object.get("kind").and_then(Value::as_str) == Some("Service")
        && object.get("apiVersion").and_then(Value::as_str) == Some("v1")
        && object.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str) == Some(name)
}

fn selects(selector: &serde_norway::Mapping, namespace: Option<&str>, pods: &PodTemplate) -> bool {
    let same_namespace = match (namespace, pods.namespace.as_deref()) {
        (Some(a), Some(b)) => a == b,
        // Either is the namespace `kubectl apply -n` gives it.
        _ => true,
    };
    same_namespace
        && selector.iter().all(|(k, v)| {
            let (Some(k), Some(v)) = (k.as_str(), v.as_str()) else { return false };
            pods.labels.iter().any(|(lk, lv)| lk == k && lv == v)
        })
}

/// Points the Service's ports that target the app port (by number or by its port name; a missing
/// `targetPort` is the `port`) at `ef-http`. TCP ports only: the sidecar proxies HTTP.
pub fn retarget(service: &mut Value, templates: &[PodTemplate]) -> Result<Outcome, (Option<String>, ManifestError)> {
    let object = label(service).unwrap_or_else(|| "Service".into());
    let namespace = service.get("metadata").and_then(|m| m.get("namespace")).and_then(Value::as_str).map(str::to_owned);
    let selector =
        service.get("spec").and_then(|s| s.get("selector")).and_then(Value::as_mapping).cloned().unwrap_or_default();
    let selector_path = Some("spec.selector".to_owned());
    let selected: Vec<&PodTemplate> = if selector.is_empty() {
        Vec::new()
    } else {
        templates.iter().filter(|t| selects(&selector, namespace.as_deref(), t)).collect()
    };
    if let Some(other) = selected.iter().find(|t| t.sidecar == Sidecar::Without) {
        return Err((selector_path, ManifestError::ServiceMixed { other: other.object.clone() }));
    }
    if let Some(other) = selected.iter().find(|t| t.sidecar == Sidecar::Foreign) {
        return Err((selector_path, ManifestError::ServiceForeignSidecar { other: other.object.clone() }));
    }
    if selected.is_empty() {
        return Err((selector_path, ManifestError::ServiceSelectsNothing));
    }
    let numbers: Vec<u16> = selected
        .iter()
        .filter_map(|t| match t.sidecar {
            Sidecar::Ours { app_port } => app_port,
            Sidecar::Without | Sidecar::Foreign => None,
        })
        .collect();
    let names: Vec<&str> = selected.iter().flat_map(|t| t.app_port_names.iter().map(String::as_str)).collect();

    let mut retargeted = Vec::new();
    let mut already = false;
    let ports = service.get_mut("spec").and_then(|s| s.get_mut("ports")).and_then(Value::as_sequence_mut);
    for port in ports.into_iter().flatten() {
        let Some(port) = port.as_mapping_mut() else { continue };
        let tcp = port.get("protocol").and_then(Value::as_str).is_none_or(|p| p == "TCP");
        let number = port.get("port").and_then(Value::as_u64);
        let target = port.get("targetPort").cloned().or_else(|| number.map(|n| Value::Number(n.into())));
        let to_app = match &target {
            Some(Value::Number(n)) => n.as_u64().is_some_and(|n| numbers.iter().any(|a| u64::from(*a) == n)),
            Some(Value::String(s)) if s == HTTP_PORT_NAME => {
                already = true;
                false
            }
            Some(Value::String(s)) => names.contains(&s.as_str()),
            _ => false,
        };
        if tcp && to_app {
            let name = port.get("name").and_then(Value::as_str);
            retargeted.push(match (name, number) {
                (Some(name), Some(n)) => format!("{name} ({n})"),
                (Some(name), None) => name.to_owned(),
                (None, n) => n.map(|n| n.to_string()).unwrap_or_default(),
            });
            port.insert(Value::String("targetPort".into()), Value::String(HTTP_PORT_NAME.into()));
        }
    }
    match (retargeted.is_empty(), already) {
        (false, _) => Ok(Outcome::Retargeted { object, ports: retargeted }),
        (true, true) => Ok(Outcome::AlreadyRetargeted { object }),
        (true, false) => {
            let mut wanted: Vec<String> = numbers.iter().map(u16::to_string).collect();
            wanted.extend(names.iter().map(|n| (*n).to_owned()));
            wanted.dedup();
            Err((Some("spec.ports".into()), ManifestError::ServiceNoPort { ports: wanted.join(" or ") }))
        }
    }
}
