//! The injected container and its volumes, modelled on the chart's sidecar (chart/templates/_container.tpl):
//! the same hardening, resources and probes, with every setting on the command line instead of a
//! ConfigMap, so that a manifest needs nothing else.

use std::time::Duration;

use serde_norway::{Mapping, Value};

use super::{Fleet, Options, ADMIN_PORT_NAME, CONTAINER_NAME, HTTP_PORT_NAME};

/// The downward-API volume with the pod's labels, which the controller's selectors match on.
pub const PODINFO_VOLUME: &str = "edgefault-podinfo";
/// The Secret volume with the controller's sidecar token.
pub const TOKEN_VOLUME: &str = "edgefault-controller-token";
const PODINFO_DIR: &str = "/etc/edgefault-podinfo";
const TOKEN_DIR: &str = "/etc/edgefault-controller";

fn s(text: impl Into<String>) -> Value {
    Value::String(text.into())
}

fn n(number: u64) -> Value {
    Value::Number(number.into())
}

fn map<const N: usize>(entries: [(&str, Value); N]) -> Value {
    Value::Mapping(entries.into_iter().map(|(k, v)| (s(k), v)).collect::<Mapping>())
}

fn list(items: impl IntoIterator<Item = Value>) -> Value {
    Value::Sequence(items.into_iter().collect())
}

/// A duration as `serve` reads it back: whole seconds when it is, else milliseconds or nanoseconds.
fn duration_arg(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d.subsec_nanos() % 1_000_000 == 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}ns", d.as_nanos())
    }
}

/// `edgefault serve`'s arguments: the proxy in front of the app on loopback, the control service on
/// loopback only, the admin endpoint for the kubelet's probes, JSON logs, and the fleet flags.
pub fn args(options: &Options, app_port: u16) -> Vec<String> {
    let mut args = vec![
        "serve".to_owned(),
        "--listen".into(),
        format!("0.0.0.0:{}", options.listen_port),
        "--upstream".into(),
        format!("http://127.0.0.1:{app_port}"),
        "--control".into(),
        format!("127.0.0.1:{}", options.control_port),
        "--admin".into(),
        format!("0.0.0.0:{}", options.admin_port),
        "--log-format".into(),
        "json".into(),
    ];
    if let Some(fleet) = &options.fleet {
        args.extend([
            "--controller".into(),
            fleet.controller.clone(),
            "--labels-file".into(),
            format!("{PODINFO_DIR}/labels"),
            "--controller-grace".into(),
            duration_arg(fleet.grace),
        ]);
        if fleet.token_secret.is_some() {
            args.extend(["--controller-token-file".into(), format!("{TOKEN_DIR}/token")]);
        }
    }
    args
}

/// The app port an injected container forwards to: the port of its `--upstream` argument.
pub fn upstream_port(container: &Value) -> Option<u16> {
    let args = container.get("args")?.as_sequence()?;
    let url = args
        .iter()
        .zip(args.iter().skip(1))
        .find_map(|(flag, value)| (flag.as_str() == Some("--upstream")).then(|| value.as_str()).flatten())?;
    let authority = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = authority.split('/').next()?;
    authority.rsplit_once(':')?.1.parse().ok()
}

/// The container. `native`: a native sidecar for `initContainers` (`restartPolicy: Always`), which
/// Kubernetes stops once the pod's containers have completed, so that Jobs still finish.
pub fn container(options: &Options, app_port: u16, native: bool) -> Value {
    let probe = |path: &str, period: u64| {
        map([
            ("httpGet", map([("path", s(path)), ("port", s(ADMIN_PORT_NAME))])),
            ("periodSeconds", n(period)),
            ("timeoutSeconds", n(2)),
            ("failureThreshold", n(3)),
        ])
    };
    let port = |name: &str, number: u16| {
        map([("name", s(name)), ("containerPort", n(u64::from(number))), ("protocol", s("TCP"))])
    };
    let mut c = Mapping::new();
    c.insert(s("name"), s(CONTAINER_NAME));
    c.insert(s("image"), s(&options.image));
    if native {
        c.insert(s("restartPolicy"), s("Always"));
    }
    c.insert(s("args"), list(args(options, app_port).into_iter().map(Value::String)));
    c.insert(s("ports"), list([port(HTTP_PORT_NAME, options.listen_port), port(ADMIN_PORT_NAME, options.admin_port)]));
    if options.fleet.is_some() {
        c.insert(
            s("env"),
            list([map([
                ("name", s("POD_NAME")),
                ("valueFrom", map([("fieldRef", map([("fieldPath", s("metadata.name"))]))])),
            ])]),
        );
    }
    c.insert(s("readinessProbe"), probe("/readyz", 5));
    c.insert(s("livenessProbe"), probe("/healthz", 10));
    c.insert(
        s("resources"),
        map([("requests", map([("cpu", s("50m")), ("memory", s("64Mi"))])), ("limits", map([("memory", s("256Mi"))]))]),
    );
    c.insert(
        s("securityContext"),
        map([
            ("runAsNonRoot", Value::Bool(true)),
            ("runAsUser", n(65532)),
            ("runAsGroup", n(65532)),
            ("allowPrivilegeEscalation", Value::Bool(false)),
            ("readOnlyRootFilesystem", Value::Bool(true)),
            ("capabilities", map([("drop", list([s("ALL")]))])),
            ("seccompProfile", map([("type", s("RuntimeDefault"))])),
        ]),
    );
    if let Some(fleet) = &options.fleet {
        let mount =
            |name: &str, dir: &str| map([("name", s(name)), ("mountPath", s(dir)), ("readOnly", Value::Bool(true))]);
        let mut mounts = vec![mount(PODINFO_VOLUME, PODINFO_DIR)];
        if fleet.token_secret.is_some() {
            mounts.push(mount(TOKEN_VOLUME, TOKEN_DIR));
        }
        c.insert(s("volumeMounts"), list(mounts));
    }
    Value::Mapping(c)
}

/// The pod volumes the fleet wiring mounts: the pod's labels, and the token's Secret (that key only).
pub fn volumes(fleet: &Fleet) -> Vec<Value> {
    let mut volumes = vec![map([
        ("name", s(PODINFO_VOLUME)),
        (
            "downwardAPI",
            map([(
                "items",
                list([map([("path", s("labels")), ("fieldRef", map([("fieldPath", s("metadata.labels"))]))])]),
            )]),
        ),
    ])];
    if let Some(secret) = &fleet.token_secret {
        volumes.push(map([
            ("name", s(TOKEN_VOLUME)),
            (
                "secret",
                map([
                    ("secretName", s(&secret.name)),
                    ("items", list([map([("key", s(&secret.key)), ("path", s("token"))])])),
                ]),
            ),
        ]));
    }
    volumes
}

/// The names of the volumes [`volumes`] adds.
pub fn volume_names(fleet: &Fleet) -> &'static [&'static str] {
    if fleet.token_secret.is_some() {
        &[PODINFO_VOLUME, TOKEN_VOLUME]
    } else {
        &[PODINFO_VOLUME]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inject::SecretKey;

    #[test]
    fn durations_read_back_as_given() {
        assert_eq!(duration_arg(Duration::from_secs(30)), "30s");
        assert_eq!(duration_arg(Duration::from_millis(1500)), "1500ms");
        assert_eq!(duration_arg(Duration::from_nanos(10)), "10ns");
        for d in ["30s", "1500ms", "10ns", "0s"] {
            let parsed = humantime::parse_duration(d).expect("parses");
            assert_eq!(duration_arg(parsed), d);
        }
    }

    #[test]
    fn the_upstream_port_is_read_back_from_the_args() {
        let options = Options {
            fleet: Some(Fleet {
                controller: "http://c:7070".into(),
                grace: Duration::from_secs(5),
                token_secret: Some(SecretKey { name: "t".into(), key: "k".into() }),
            }),
            ..Options::default()
        };
        let c = container(&options, 8080, false);
        assert_eq!(upstream_port(&c), Some(8080));
        let args: Vec<&str> = c["args"].as_sequence().expect("args").iter().filter_map(Value::as_str).collect();
        assert_eq!(
            args.join(" "),
            "serve --listen 0.0.0.0:15080 --upstream http://127.0.0.1:8080 --control 127.0.0.1:7070 --admin 0.0.0.0:15090 --log-format json --controller http://c:7070 --labels-file /etc/edgefault-podinfo/labels --controller-grace 5s --controller-token-file /etc/edgefault-controller/token"
        );
        assert_eq!(c.get("restartPolicy"), None);
        assert_eq!(container(&options, 1, true)["restartPolicy"].as_str(), Some("Always"));
    }
}
