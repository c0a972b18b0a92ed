//! `edgefault inject` as a user runs it: the binary on files and pipes, its output parsed back, the sidecar
//! it writes started for real, and helm's renders checked by kubernetes-validate (docs/deploy.md, "Adding
//! the sidecar to your manifests").

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use serde_norway::Value;

use crate::support::{peers, *};

/// What a run printed.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `edgefault inject ARGS`, with `stdin` on its standard input.
fn inject(args: &[&str], stdin: &str) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_edgefault"))
        .arg("inject")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    let mut pipe = child.stdin.take().expect("stdin");
    let input = stdin.to_owned();
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(input.as_bytes());
    });
    let out = child.wait_with_output().expect("waits");
    writer.join().expect("writer");
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8(out.stdout).expect("utf-8"),
        stderr: String::from_utf8(out.stderr).expect("utf-8"),
    }
}

/// Runs `edgefault inject FILE ARGS` on `text` written to a file.
fn inject_text(text: &str, args: &[&str]) -> Run {
    let file = temp_file("manifests.yaml", text);
    let mut all = vec![file.to_str().expect("path")];
    all.extend_from_slice(args);
    let run = inject(&all, "");
    let _ = std::fs::remove_dir_all(file.parent().expect("dir"));
    run
}

/// The documents of a stream, each with its text (the `---` line first), as the command cuts them.
fn documents(text: &str) -> Vec<String> {
    let mut docs: Vec<String> = Vec::new();
    for line in text.split_inclusive('\n') {
        if line.starts_with("---") || docs.is_empty() {
            docs.push(String::new());
        }
        docs.last_mut().expect("a document").push_str(line);
    }
    docs
}

fn yaml(text: &str) -> Value {
    serde_norway::from_str(text).unwrap_or_else(|e| panic!("{e}:\n{text}"))
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_sequence().expect("a list").iter().map(|s| s.as_str().expect("a string")).collect()
}

/// A shop's manifests: every kind the command handles or passes through, annotated in each way.
const SHOP: &str = r#"# The shop, rendered: a comment-only head.
---
# Source: shop/templates/web.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  annotations:
    edgefault.io/inject: "true" # on the workload's own metadata
spec:
  replicas: 2
  selector:
    matchLabels: { app: web }
  template:
    metadata:
      labels: { app: web }
    spec:
      containers:
        - name: app # the application
          image: shop/web:1.4
          env:
            - { name: FEATURE, value: "on" }
          ports:
            - { name: http, containerPort: 8080 }
---
apiVersion: apps/v1
kind: StatefulSet
metadata: { name: search, namespace: shop }
spec:
  serviceName: search
  selector: { matchLabels: { app: search } }
  template:
    metadata: { labels: { app: search } }
    spec:
      containers:
        - { name: search, image: "shop/search:3", ports: [{ name: api, containerPort: 9200 }] }
--- # the nightly report
apiVersion: batch/v1
kind: CronJob
metadata: { name: report, namespace: shop }
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        metadata:
          annotations: { edgefault.io/inject: "true" }
        spec:
          restartPolicy: OnFailure
          containers:
            - { name: report, image: "shop/report:2", ports: [{ containerPort: 9000 }] }
---
apiVersion: v1
kind: Pod
metadata:
  name: debug
  namespace: shop
  annotations: { edgefault.io/inject: "false" }
spec:
  containers:
    - { name: shell, image: "busybox:1.36", ports: [{ containerPort: 8081 }] }
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec:
  selector: { app: web }
  ports:
    - { name: http, port: 80, targetPort: http }
    - { name: direct, port: 8080 }
    - { name: status, port: 8081, targetPort: 8081 }
---
apiVersion: v1
kind: ConfigMap
metadata: { name: settings, namespace: shop }
data:
  # YAML 1.1 reads these two unquoted as booleans.
  enabled: 'yes'
  level: "on"
---
# Nothing but a comment.
"#;

/// The index of each document of SHOP.
const HEAD: usize = 0;
const WEB: usize = 1;
const SEARCH: usize = 2;
const REPORT: usize = 3;
const DEBUG: usize = 4;
const SERVICE: usize = 5;
const SETTINGS: usize = 6;
const COMMENT: usize = 7;

#[test]
fn a_mixed_file_gets_the_sidecar_where_it_is_asked_for() {
    let run = inject_text(SHOP, &["--service", "web"]);
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(
        run.stderr.lines().collect::<Vec<_>>(),
        [
            "injected: Deployment shop/web (app port 8080)",
            "skipped: StatefulSet shop/search (not asked for: no edgefault.io/inject: \"true\"; --all takes it)",
            "injected: CronJob shop/report (app port 9000; a native sidecar in initContainers, so the pods still complete)",
            "skipped: Pod shop/debug (edgefault.io/inject: \"false\")",
            "service: Service shop/web: port http (80), direct (8080) now targets ef-http",
        ]
    );
    let (before, after) = (documents(SHOP), documents(&run.stdout));
    assert_eq!(after.len(), before.len(), "{}", run.stdout);
    for i in [HEAD, SEARCH, DEBUG, SETTINGS, COMMENT] {
        assert_eq!(after[i], before[i], "document {i} is not the one read");
    }
    // Changed documents keep their `---` line and the comments above their first line.
    assert!(after[WEB].starts_with("---\n# Source: shop/templates/web.yaml\napiVersion: apps/v1\n"), "{}", after[WEB]);
    assert!(after[REPORT].starts_with("--- # the nightly report\napiVersion: batch/v1\n"), "{}", after[REPORT]);
    // The application's `"on"` stays a string for YAML 1.1 readers.
    assert!(after[WEB].contains("value: \"on\"\n"), "{}", after[WEB]);

    let web = yaml(&after[WEB]);
    let pod = &web["spec"]["template"];
    let containers = pod["spec"]["containers"].as_sequence().expect("containers");
    assert_eq!(containers.len(), 2);
    assert_eq!(containers[0]["name"].as_str(), Some("app"));
    let sidecar = &containers[1];
    assert_eq!(sidecar["name"].as_str(), Some("edgefault"));
    assert_eq!(sidecar["image"].as_str(), Some(concat!("edgefault:", env!("CARGO_PKG_VERSION"))));
    assert_eq!(
        strings(&sidecar["args"]),
        [
            "serve",
            "--listen",
            "0.0.0.0:15080",
            "--upstream",
            "http://127.0.0.1:8080",
            "--control",
            "127.0.0.1:7070",
            "--admin",
            "0.0.0.0:15090",
            "--log-format",
            "json"
        ]
    );
    let ports: Vec<(&str, u64)> = sidecar["ports"]
        .as_sequence()
        .expect("ports")
        .iter()
        .map(|p| (p["name"].as_str().expect("name"), p["containerPort"].as_u64().expect("port")))
        .collect();
    assert_eq!(ports, [("ef-http", 15080), ("ef-admin", 15090)], "the control port is not declared: loopback only");
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        assert_eq!(sidecar[probe]["httpGet"]["path"].as_str(), Some(path));
        assert_eq!(sidecar[probe]["httpGet"]["port"].as_str(), Some("ef-admin"));
    }
    let security = &sidecar["securityContext"];
    assert_eq!(security["runAsNonRoot"].as_bool(), Some(true));
    assert_eq!(security["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(security["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(strings(&security["capabilities"]["drop"]), ["ALL"]);
    assert_eq!(security["seccompProfile"]["type"].as_str(), Some("RuntimeDefault"));
    assert_eq!(sidecar["resources"]["requests"]["memory"].as_str(), Some("64Mi"));
    // No fleet wiring without --controller; the pod's own settings untouched.
    assert_eq!(sidecar.get("env"), None);
    assert_eq!(pod["spec"].get("volumes"), None);
    assert_eq!(pod["metadata"]["labels"].as_mapping().map(|m| m.len()), Some(1));
    assert_eq!(pod["spec"].get("terminationGracePeriodSeconds"), None);

    let report = yaml(&after[REPORT]);
    let job_pod = &report["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(job_pod["containers"].as_sequence().map(Vec::len), Some(1));
    let native = &job_pod["initContainers"][0];
    assert_eq!((native["name"].as_str(), native["restartPolicy"].as_str()), (Some("edgefault"), Some("Always")));
    assert_eq!(native["args"][4].as_str(), Some("http://127.0.0.1:9000"));

    let service = yaml(&after[SERVICE]);
    let targets: Vec<Option<&str>> =
        service["spec"]["ports"].as_sequence().expect("ports").iter().map(|p| p["targetPort"].as_str()).collect();
    assert_eq!(targets, [Some("ef-http"), Some("ef-http"), None], "8081 is not the app port");
    assert_eq!(service["spec"]["ports"][2]["targetPort"].as_u64(), Some(8081));

    // --all takes the StatefulSet too, never the Pod that opted out; --controller wires the fleet.
    let run = inject_text(SHOP, &["--all", "--controller", "http://c:7070", "--controller-token-secret", "tokens"]);
    assert!(run.ok, "{}", run.stderr);
    assert!(run.stderr.contains("injected: StatefulSet shop/search (app port 9200)\n"), "{}", run.stderr);
    assert!(run.stderr.contains("skipped: Pod shop/debug (edgefault.io/inject: \"false\")\n"), "{}", run.stderr);
    let after = documents(&run.stdout);
    for i in [HEAD, DEBUG, SERVICE, SETTINGS, COMMENT] {
        assert_eq!(after[i], before[i], "document {i} is not the one read");
    }
    let search = yaml(&after[SEARCH]);
    let pod = &search["spec"]["template"];
    assert_eq!(pod["metadata"]["labels"]["edgefault.io/sidecar"].as_str(), Some("true"));
    let sidecar = &pod["spec"]["containers"][1];
    assert_eq!(
        strings(&sidecar["args"])[11..],
        [
            "--controller",
            "http://c:7070",
            "--labels-file",
            "/etc/edgefault-podinfo/labels",
            "--controller-grace",
            "30s",
            "--controller-token-file",
            "/etc/edgefault-controller/token"
        ]
    );
    assert_eq!(sidecar["env"][0]["name"].as_str(), Some("POD_NAME"));
    assert_eq!(sidecar["env"][0]["valueFrom"]["fieldRef"]["fieldPath"].as_str(), Some("metadata.name"));
    let mounts: Vec<(&str, &str, bool)> = sidecar["volumeMounts"]
        .as_sequence()
        .expect("mounts")
        .iter()
        .map(|m| (m["name"].as_str().expect("name"), m["mountPath"].as_str().expect("path"), m["readOnly"] == true))
        .collect();
    assert_eq!(
        mounts,
        [
            ("edgefault-podinfo", "/etc/edgefault-podinfo", true),
            ("edgefault-controller-token", "/etc/edgefault-controller", true)
        ]
    );
    let volumes = &pod["spec"]["volumes"];
    assert_eq!(volumes[0]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"].as_str(), Some("metadata.labels"));
    assert_eq!(volumes[0]["downwardAPI"]["items"][0]["path"].as_str(), Some("labels"));
    assert_eq!(volumes[1]["secret"]["secretName"].as_str(), Some("tokens"));
    let items = &volumes[1]["secret"]["items"];
    assert_eq!((items[0]["key"].as_str(), items[0]["path"].as_str()), (Some("sidecar-token"), Some("token")));
    assert_eq!(items.as_sequence().map(Vec::len), Some(1), "only the token's key is mounted");
}

#[test]
fn injecting_twice_changes_nothing() {
    for flags in [
        vec!["--service", "web"],
        vec!["--all", "--service", "web", "--controller", "http://c:7070", "--controller-token-secret", "t:k"],
    ] {
        let first = inject_text(SHOP, &flags);
        assert!(first.ok, "{}", first.stderr);
        assert_ne!(first.stdout, SHOP);
        // The output again, through a pipe this time: byte for byte the same.
        let mut args = vec!["-"];
        args.extend_from_slice(&flags);
        let second = inject(&args, &first.stdout);
        assert!(second.ok, "{}", second.stderr);
        assert!(second.stdout == first.stdout, "a second run changed the output:\n{}", second.stdout);
        assert!(!second.stderr.contains("injected:"), "{}", second.stderr);
        assert!(second.stderr.contains("skipped: Deployment shop/web (already has an edgefault container)"));
        assert!(second.stderr.contains("service: Service shop/web: already targets ef-http"), "{}", second.stderr);
    }
    // -o writes the file, and nothing to stdout.
    let dir = temp_file("keep", "");
    let out = dir.with_file_name("out.yaml");
    let run = inject(&["-", "-o", out.to_str().expect("path")], SHOP);
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(run.stdout, "");
    assert_eq!(std::fs::read_to_string(&out).expect("written"), inject(&[], SHOP).stdout);
    let _ = std::fs::remove_dir_all(dir.parent().expect("dir"));
}

#[test]
fn bad_input_is_refused_with_its_place_and_nothing_is_written() {
    let web = |ports: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{ name: web, namespace: shop }}\nspec:\n  template:\n    metadata:\n      annotations: {{ edgefault.io/inject: \"true\" }}\n    spec:\n      containers:\n        - name: app\n          image: shop/web:1\n{ports}"
        )
    };
    let cases: Vec<(String, Vec<&str>, &str)> = vec![
        (
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{ name: c }}\n---\n{}", web("")),
            vec![],
            "document 2 (line 4), Deployment shop/web, spec.template.spec.containers[0].ports: no app port: the first container (app) declares no containerPort; give --app-port or the annotation edgefault.io/app-port",
        ),
        (
            web("          ports: [{ name: metrics, containerPort: 15090 }]\n"),
            vec![],
            "document 1 (line 1), Deployment shop/web, spec.template.spec.containers: port 15090 of the sidecar (--admin-port) is already container app's port metrics; choose another with --admin-port",
        ),
        (web("          ports: [{ containerPort: 8080 }]\n"), vec!["--service", "api"], "--service api: no Service named api in the input"),
        (
            format!("a: 1\n---\nb: 2\n---\nc: [1,\n  d: 2\n---\n{}", web("          ports: [{ containerPort: 8080 }]\n")),
            vec![],
            "document 3 (line 4): not valid YAML: did not find expected ',' or ']' at line 7 column 1, while parsing a flow sequence at line 5 column 4",
        ),
        (
            format!("{}---\n{}", web(""), web("          ports: [{ containerPort: 7070 }]\n")),
            vec![],
            "2 problems, nothing written:\n  document 1 (line 1), Deployment shop/web, spec.template.spec.containers[0].ports: no app port",
        ),
        (web("          ports: [{ containerPort: 8080 }]\n"), vec!["--listen-port", "80"], "--listen-port: 80 is below 1024"),
        (web("          ports: [{ containerPort: 8080 }]\n"), vec!["--controller", "c:7070"], "--controller: \"c:7070\" is not an http:// or https:// URL"),
    ];
    for (text, flags, expected) in cases {
        let file = temp_file("bad.yaml", &text);
        let out = file.with_file_name("out.yaml");
        let mut args = vec![file.to_str().expect("path"), "-o", out.to_str().expect("path")];
        args.extend_from_slice(&flags);
        let run = inject(&args, "");
        assert!(!run.ok, "accepted:\n{text}");
        assert_eq!(run.stdout, "");
        assert!(!out.exists(), "wrote {}", out.display());
        assert!(run.stderr.contains(expected), "expected {expected:?} in:\n{}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
        if expected.starts_with("document") {
            assert!(run.stderr.starts_with(&format!("edgefault: inject: {}: ", file.display())), "{}", run.stderr);
        }
        // The same on stdout: nothing.
        let mut args = vec![file.to_str().expect("path")];
        args.extend_from_slice(&flags);
        assert_eq!(inject(&args, "").stdout, "");
        let _ = std::fs::remove_dir_all(file.parent().expect("dir"));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// The command line the sidecar of a one-Deployment manifest gets with `flags`.
fn sidecar_args(flags: &[&str]) -> Vec<String> {
    let manifest = "apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: web }\nspec:\n  template:\n    metadata: { labels: { app: web } }\n    spec:\n      containers: [{ name: app, image: web }]\n";
    let mut args = vec!["--all"];
    args.extend_from_slice(flags);
    let run = inject_text(manifest, &args);
    assert!(run.ok, "{}", run.stderr);
    let v = yaml(&run.stdout);
    strings(&v["spec"]["template"]["spec"]["containers"][1]["args"]).into_iter().map(str::to_owned).collect()
}

/// The written command line runs: `edgefault serve` with exactly those arguments is ready, proxies to the
/// app port, and subscribes to the controller with the token and the labels from the mounted files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_written_sidecar_runs_and_joins_the_controller() {
    const SIDECAR_TOKEN: &str = "inject-test-sidecar-token-0123456789";
    const ADMIN_TOKEN: &str = "inject-test-admin-token-0123456789ab";
    let app = upstream().await;
    let tokens = temp_file(
        "tokens.yaml",
        &format!("- {{ name: ops, role: admin, token: {ADMIN_TOKEN} }}\n- {{ name: pods, role: sidecar, token: {SIDECAR_TOKEN} }}\n"),
    );
    let controller = binary::controller(&["--control", "127.0.0.1:0", "--tokens-file", tokens.to_str().expect("path")]);
    let (listen, control, admin) = (free_port(), free_port(), free_port());
    let ports = [listen, control, admin].map(|p| p.to_string());
    let app_port = app.port().to_string();
    let url = controller.url();
    let args = sidecar_args(&[
        "--app-port",
        &app_port,
        "--listen-port",
        &ports[0],
        "--control-port",
        &ports[1],
        "--admin-port",
        &ports[2],
        "--controller",
        &url,
        "--controller-grace",
        "1500ms",
        "--controller-token-secret",
        "tokens",
    ]);
    assert!(args.windows(2).any(|w| w == ["--controller-grace", "1500ms"]), "{args:?}");

    // The kubelet's part: the downward-API labels file, the Secret's key and POD_NAME.
    let labels = temp_file("labels", "app=\"web\"\npod-template-hash=\"7d9f\"\n");
    let token = temp_file("token", SIDECAR_TOKEN);
    let args: Vec<String> = args
        .into_iter()
        .map(|a| match a.as_str() {
            "/etc/edgefault-podinfo/labels" => labels.display().to_string(),
            "/etc/edgefault-controller/token" => token.display().to_string(),
            _ => a,
        })
        .collect();
    let child = Command::new(env!("CARGO_BIN_EXE_edgefault"))
        .args(&args)
        .env("POD_NAME", "web-7d9f-x2x4q")
        .env_remove("EDGEFAULT_ADMIN_TOKEN")
        .env_remove("EDGEFAULT_CONTROLLER")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the sidecar starts");
    let _sidecar = Background(child);

    let client = client();
    let ready = format!("http://127.0.0.1:{admin}/readyz");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let open = std::net::TcpStream::connect(("127.0.0.1", admin)).is_ok();
        if open && get(&client, &ready).await.status == 200 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the sidecar never got ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let through = get(&client, &format!("http://127.0.0.1:{listen}/hello")).await;
    assert_eq!(through.status, 200, "the sidecar forwards to the app port");
    assert!(through.headers.contains_key("x-upstream-version"), "answered by the app");

    let admin_file = temp_file("admin-token", ADMIN_TOKEN);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let listing = loop {
        let out = Command::new(env!("CARGO_BIN_EXE_edgefault"))
            .args(["ctl", "--control", &url, "--token-file", admin_file.to_str().expect("path"), "sidecars"])
            .env_remove("EDGEFAULT_CONTROL")
            .output()
            .expect("ctl runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains("web-7d9f-x2x4q") && text.contains("connected") {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "the sidecar never joined:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(listing.contains("app=web,pod-template-hash=7d9f"), "{listing}");
    for file in [tokens, labels, token, admin_file] {
        let _ = std::fs::remove_dir_all(file.parent().expect("dir"));
    }
}

/// A child process, killed when the test ends.
struct Background(std::process::Child);

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `helm template shop CHART --namespace shop ARGS`, with a helm home of its own.
fn helm_template(helm: &Path, home: &Path, chart: &str, args: &[&str]) -> String {
    let out = Command::new(helm)
        .args(["template", "shop", chart, "--namespace", "shop"])
        .args(args)
        .current_dir(root())
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"))
        .output()
        .expect("helm runs");
    assert!(out.status.success(), "helm template {chart}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

/// `kubernetes-validate --strict` for each Kubernetes version the chart supports.
fn validate(tool: &Path, files: &[&Path]) {
    for version in ["1.30.0", "1.35.0"] {
        let out = Command::new(tool)
            .args(["--strict", "--quiet", "--kubernetes-version", version])
            .args(files)
            .output()
            .expect("kubernetes-validate runs");
        assert!(
            out.status.success(),
            "kubernetes-validate --strict for {version}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// helm's output through the command is still valid Kubernetes, for the oldest and newest version the
/// chart supports; a render whose pods carry the chart's own sidecar passes through unchanged.
#[test]
fn chart_renders_stay_valid_kubernetes() {
    let (Some(helm), Some(validator)) = (peers::chart_tool("helm"), peers::chart_tool("kubernetes-validate")) else {
        return;
    };
    let home = temp_file("helm", "");
    let home = home.parent().expect("dir").to_owned();
    let fleet = ["--all", "--controller", "http://c:7070", "--controller-token-secret", "tokens"];

    // An application chart that knows nothing about edgefault.
    let render = helm_template(&helm, &home, "examples/helm-inject", &[]);
    let mut flags = fleet.to_vec();
    flags.extend(["--service", "shop"]);
    let run = inject(&[&["-"], flags.as_slice()].concat(), &render);
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(
        run.stderr,
        "injected: Deployment shop (app port 3000)\nservice: Service shop: port http (80) now targets ef-http\n"
    );
    let injected = home.join("helm-inject.yaml");
    std::fs::write(&injected, &run.stdout).expect("write");
    let docs = documents(&run.stdout);
    let deployment = docs.iter().find(|d| d.contains("kind: Deployment")).expect("the Deployment");
    assert!(deployment.starts_with("---\n# Source: shop/templates/deployment.yaml\n"), "{deployment}");
    assert_eq!(yaml(deployment)["spec"]["template"]["spec"]["containers"][1]["name"].as_str(), Some("edgefault"));

    // The multi-kind file, every workload injected with the fleet wiring.
    let run = inject_text(SHOP, &fleet);
    assert!(run.ok, "{}", run.stderr);
    let shop = home.join("shop.yaml");
    std::fs::write(&shop, &run.stdout).expect("write");
    validate(&validator, &[&injected, &shop]);

    // The chart in gateway mode: its Deployment already runs edgefault, so nothing changes.
    let gateway = helm_template(&helm, &home, "chart", &["--values", "chart/ci/gateway-values.yaml"]);
    let run = inject(&[&["-"], fleet.as_slice()].concat(), &gateway);
    assert!(run.ok, "{}", run.stderr);
    assert!(run.stdout == gateway, "the gateway render changed");
    assert_eq!(run.stderr, "skipped: Deployment shop/shop-edgefault (already has an edgefault container)\n");
    let _ = std::fs::remove_dir_all(&home);
}
