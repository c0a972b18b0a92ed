//! Unit tests of the whole pass, on text; the command line and real files are in tests/it/inject.rs.

use super::*;

fn run(text: &str, options: &Options) -> Injected {
    inject(text, options).unwrap_or_else(|p| panic!("{p:?}"))
}

fn problems(text: &str, options: &Options) -> Vec<String> {
    match inject(text, options) {
        Ok(i) => panic!("expected problems, got:\n{}", i.text),
        Err(p) => p.iter().map(ToString::to_string).collect(),
    }
}

const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  template:
    metadata:
      labels: {app: web}
      annotations:
        edgefault.io/inject: \"true\"
    spec:
      containers:
        - name: app
          image: shop:1
          ports:
            - {name: http, containerPort: 8080}
";

#[test]
fn the_default_image_is_the_charts() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let values: Value =
        serde_norway::from_str(&std::fs::read_to_string(root.join("chart/values.yaml")).expect("values"))
            .expect("yaml");
    let chart: Value =
        serde_norway::from_str(&std::fs::read_to_string(root.join("chart/Chart.yaml")).expect("chart")).expect("yaml");
    let tag = values["image"]["tag"].as_str().filter(|t| !t.is_empty()).or(chart["appVersion"].as_str());
    assert_eq!(
        DEFAULT_IMAGE,
        format!("{}:{}", values["image"]["repository"].as_str().expect("repo"), tag.expect("tag"))
    );
}

#[test]
fn untouched_input_comes_back_byte_for_byte() {
    let text = "# a comment-only head\n---\napiVersion: v1\nkind: ConfigMap # why\nmetadata: {name: c}\ndata: {a: 'yes'}\n--- # next\n\n---\r\nnot: kubernetes\r\n...\n";
    let out = run(text, &Options { all: true, ..Options::default() });
    assert_eq!(out.text, text);
    assert!(out.outcomes.is_empty());
}

#[test]
fn an_annotated_deployment_gets_the_sidecar_and_keeps_its_head_comments() {
    let text = format!("---\n# Source: shop/templates/web.yaml\n{DEPLOYMENT}");
    let out = run(&text, &Options::default());
    assert_eq!(
        out.outcomes,
        [Outcome::Injected { object: "Deployment shop/web".into(), app_port: 8080, native: false }]
    );
    assert_eq!(out.outcomes[0].to_string(), "injected: Deployment shop/web (app port 8080)");
    assert!(out.text.starts_with("---\n# Source: shop/templates/web.yaml\napiVersion: apps/v1\n"), "{}", out.text);
    let v: Value = serde_norway::from_str(&out.text).expect("yaml");
    let containers = v["spec"]["template"]["spec"]["containers"].as_sequence().expect("containers");
    assert_eq!(containers.len(), 2);
    assert_eq!(containers[1]["name"].as_str(), Some("edgefault"));
    assert_eq!(containers[1]["args"][4].as_str(), Some("http://127.0.0.1:8080"));
    assert_eq!(v["spec"]["template"]["metadata"]["labels"].get(SIDECAR_LABEL), None, "no label without --controller");
    // A second pass changes nothing.
    assert_eq!(run(&out.text, &Options::default()).text, out.text);
}

#[test]
fn jobs_get_a_native_sidecar() {
    let text = "apiVersion: batch/v1\nkind: Job\nmetadata: {name: once}\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: app, ports: [{containerPort: 3000}]}]\n";
    let out = run(text, &Options { all: true, ..Options::default() });
    let v: Value = serde_norway::from_str(&out.text).expect("yaml");
    let init = &v["spec"]["template"]["spec"]["initContainers"][0];
    assert_eq!((init["name"].as_str(), init["restartPolicy"].as_str()), (Some("edgefault"), Some("Always")));
    assert_eq!(v["spec"]["template"]["spec"]["containers"].as_sequence().map(Vec::len), Some(1));
}

#[test]
fn a_list_is_handled_item_by_item() {
    let item = DEPLOYMENT.replace('\n', "\n    ");
    let text = format!("apiVersion: v1\nkind: List\nitems:\n  - apiVersion: v1\n    kind: ConfigMap\n    metadata: {{name: c}}\n  - {}\n", item.trim_end());
    let out = run(&text, &Options::default());
    assert_eq!(out.outcomes.len(), 1);
    let v: Value = serde_norway::from_str(&out.text).expect("yaml");
    assert_eq!(v["items"][1]["spec"]["template"]["spec"]["containers"][1]["name"].as_str(), Some("edgefault"));
    assert_eq!(v["items"][0]["metadata"]["name"].as_str(), Some("c"));
}

#[test]
fn problems_say_where() {
    let no_port = DEPLOYMENT.replace("          ports:\n            - {name: http, containerPort: 8080}\n", "");
    assert_eq!(
        problems(&format!("a: 1\n---\n{no_port}"), &Options::default()),
        ["document 2 (line 2), Deployment shop/web, spec.template.spec.containers[0].ports: no app port: the first container (app) declares no containerPort; give --app-port or the annotation edgefault.io/app-port"]
    );
    let clash = DEPLOYMENT.replace("8080}", "7070}");
    assert_eq!(
        problems(&clash, &Options::default()),
        ["document 1 (line 1), Deployment shop/web, spec.template.spec.containers: port 7070 of the sidecar (--control-port) is already container app's port http; choose another with --control-port"]
    );
    let bad = "a: 1\n---\nb: [1,\n\nc: 2\n";
    let p = problems(bad, &Options::default());
    assert_eq!(p.len(), 1);
    assert_eq!(
        p,
        ["document 2 (line 2): not valid YAML: did not find expected ',' or ']' at line 6 column 1, while parsing a flow sequence at line 3 column 4"]
    );
    let yes = DEPLOYMENT.replace("\"true\"", "\"yes\"");
    assert_eq!(
        problems(&yes, &Options::default()),
        ["document 1 (line 1), Deployment shop/web, spec.template.metadata.annotations[edgefault.io/inject]: edgefault.io/inject must be \"true\" or \"false\", found \"yes\""]
    );
    let unquoted = DEPLOYMENT.replace("\"true\"", "true");
    assert!(problems(&unquoted, &Options::default())[0]
        .ends_with("must be a string (annotations are strings: quote it), found a boolean"));
    let missing = Options { services: vec!["web".into()], ..Options::default() };
    assert_eq!(problems(DEPLOYMENT, &missing), ["--service web: no Service named web in the input"]);
}

#[test]
fn the_app_port_comes_from_the_flag_then_the_annotation_then_the_first_port() {
    let named = DEPLOYMENT
        .replace("edgefault.io/inject: \"true\"", "edgefault.io/inject: \"true\"\n        edgefault.io/app-port: http");
    let out = run(&named, &Options::default());
    assert!(matches!(out.outcomes[0], Outcome::Injected { app_port: 8080, .. }));
    let numbered = named.replace("app-port: http", "app-port: \"9000\"");
    assert!(matches!(run(&numbered, &Options::default()).outcomes[0], Outcome::Injected { app_port: 9000, .. }));
    let flag = Options { app_port: Some(9100), ..Options::default() };
    assert!(matches!(run(&numbered, &flag).outcomes[0], Outcome::Injected { app_port: 9100, .. }));
    let wrong = named.replace("app-port: http", "app-port: grpc");
    assert!(
        problems(&wrong, &Options::default())[0].contains("edgefault.io/app-port must be a port number or the name")
    );
}

#[test]
fn services_follow_the_sidecar() {
    let service = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec:\n  selector: {app: web}\n  ports:\n    - {name: http, port: 80, targetPort: http}\n    - {name: metrics, port: 9100}\n    - {name: dns, port: 8080, protocol: UDP}\n";
    let text = format!("{DEPLOYMENT}---\n{service}");
    let options = Options { services: vec!["web".into()], ..Options::default() };
    let out = run(&text, &options);
    assert_eq!(out.outcomes[1].to_string(), "service: Service shop/web: port http (80) now targets ef-http");
    let docs: Vec<Value> = out.text.split("---\n").map(|d| serde_norway::from_str(d).expect("yaml")).collect();
    let ports = &docs[1]["spec"]["ports"];
    assert_eq!(ports[0]["targetPort"].as_str(), Some("ef-http"));
    assert_eq!(ports[1].get("targetPort"), None);
    assert_eq!(ports[2].get("targetPort"), None);
    let again = run(&out.text, &options);
    assert_eq!(again.text, out.text);
    assert_eq!(again.outcomes[1].to_string(), "service: Service shop/web: already targets ef-http");

    // A Service that would also lose pods without the sidecar is refused.
    let other = DEPLOYMENT.replace("name: web\n", "name: web-canary\n").replace("\"true\"", "\"false\"");
    let p = problems(&format!("{text}---\n{other}"), &options);
    assert!(p[0].contains("also selects the pods of Deployment shop/web-canary"), "{p:?}");
}

#[test]
fn flags_are_checked() {
    let check = |o: Options| o.check().map_err(|e| e.to_string());
    assert_eq!(check(Options::default()), Ok(()));
    assert_eq!(
        check(Options { admin_port: 15080, ..Options::default() }),
        Err("--admin-port: 15080 is also --listen-port".into())
    );
    assert!(check(Options { listen_port: 80, ..Options::default() }).is_err());
    assert!(check(Options { app_port: Some(7070), ..Options::default() }).is_err());
    let fleet = |url: &str| Options {
        fleet: Some(Fleet { controller: url.into(), grace: DEFAULT_CONTROLLER_GRACE, token_secret: None }),
        ..Options::default()
    };
    assert_eq!(check(fleet("http://c:7070")), Ok(()));
    assert!(check(fleet("c:7070")).is_err());
    assert!(check(fleet("ftp://c")).is_err());
    assert_eq!(SecretKey::parse("tokens"), Ok(SecretKey { name: "tokens".into(), key: "sidecar-token".into() }));
    assert_eq!(SecretKey::parse("t:k.1"), Ok(SecretKey { name: "t".into(), key: "k.1".into() }));
    assert!(SecretKey::parse("Tokens").is_err());
    assert!(SecretKey::parse("t:").is_err());
}

#[test]
fn a_byte_order_mark_directives_and_crlf_line_breaks_are_kept() {
    let text = format!("\u{feff}%YAML 1.2\n---\n{DEPLOYMENT}").replace('\n', "\r\n");
    let out = run(&text, &Options::default());
    assert!(matches!(out.outcomes[..], [Outcome::Injected { .. }]));
    assert!(out.text.starts_with("\u{feff}%YAML 1.2\r\n---\r\napiVersion: apps/v1\r\n"), "{:?}", out.text);
    assert!(!out.text.replace("\r\n", "").contains('\n'), "only CRLF line breaks");
    assert_eq!(run(&out.text, &Options::default()).text, out.text);
    let out = run(&format!("\u{feff}{DEPLOYMENT}"), &Options::default());
    assert!(out.text.starts_with("\u{feff}apiVersion: apps/v1\n"), "{:?}", out.text);
    let untouched = "\u{feff}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n";
    assert_eq!(run(untouched, &Options::default()).text, untouched);
}

#[test]
fn only_a_workload_that_gets_the_sidecar_needs_a_pod_template() {
    let broken = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: half}\nspec: {replicas: 1}\n";
    let out = run(broken, &Options::default());
    assert_eq!(out.text, broken);
    assert_eq!(out.outcomes, [Outcome::NotAskedFor { object: "Deployment half".into() }]);
    assert_eq!(
        problems(broken, &Options { all: true, ..Options::default() }),
        ["document 1 (line 1), Deployment half, spec.template.spec.containers: the pod template has no containers"]
    );
    let empty = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, annotations: {edgefault.io/inject: \"true\"}}\nspec: {containers: []}\n";
    assert_eq!(
        problems(empty, &Options::default()),
        ["document 1 (line 1), Pod p, spec.containers: the pod template has no containers"]
    );
}
