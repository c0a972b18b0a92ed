{{/*
Helpers. Every helper here takes a context with .Values, .Release and .Chart of the edgefault chart: the
chart's own root context, or the one that edgefault.context builds when an application chart includes the
sidecar templates (see _sidecar.tpl). Names use only the release name and the values, never the calling
chart's name, so the application chart and this chart agree on them.
*/}}

{{- define "edgefault.name" -}}
{{- default "edgefault" .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "edgefault.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "edgefault.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "edgefault.configMapName" -}}
{{- printf "%s-config" (include "edgefault.fullname" . | trunc 56 | trimSuffix "-") -}}
{{- end -}}

{{- define "edgefault.selectorLabels" -}}
app.kubernetes.io/name: {{ include "edgefault.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "edgefault.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "edgefault.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: edgefault
{{- end -}}

{{- define "edgefault.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "edgefault.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "edgefault.image" -}}
{{- $image := .Values.image -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $image.repository (default .Chart.AppVersion $image.tag) -}}
{{- end -}}
{{- end -}}

{{/* An env entry read from the control token Secret. Takes (list NAME tokenSecret). */}}
{{- define "edgefault.tokenEnv" -}}
- name: {{ index . 0 }}
  valueFrom:
    secretKeyRef:
      name: {{ (index . 1).name | quote }}
      key: {{ (index . 1).key | quote }}
{{- end -}}

{{/* "true" when the host is a loopback address, "" otherwise. */}}
{{- define "edgefault.isLoopback" -}}
{{- if or (hasPrefix "127." .) (eq . "::1") -}}true{{- end -}}
{{- end -}}

{{/* host:port, with IPv6 hosts in brackets. Takes (list host port). */}}
{{- define "edgefault.hostPort" -}}
{{- $host := index . 0 -}}
{{- if contains ":" $host -}}
{{- printf "[%s]:%v" $host (index . 1) -}}
{{- else -}}
{{- printf "%s:%v" $host (index . 1) -}}
{{- end -}}
{{- end -}}

{{- define "edgefault.controlExposed" -}}
{{- if not (include "edgefault.isLoopback" .Values.control.host) -}}true{{- end -}}
{{- end -}}

{{- define "edgefault.toxiproxyExposed" -}}
{{- if and (.Values.toxiproxy).enabled (not (include "edgefault.isLoopback" .Values.toxiproxy.host)) -}}true{{- end -}}
{{- end -}}

{{- define "edgefault.adminExposed" -}}
{{- if and .Values.admin.enabled (not (include "edgefault.isLoopback" .Values.admin.host)) -}}true{{- end -}}
{{- end -}}

{{/* The control address as seen from inside the pod, for `edgefault ctl`. */}}
{{- define "edgefault.localControlUrl" -}}
{{- $host := ternary "127.0.0.1" "::1" (not (contains ":" .Values.control.host)) -}}
{{- if include "edgefault.isLoopback" .Values.control.host -}}
{{- $host = .Values.control.host -}}
{{- end -}}
{{- printf "http://%s" (include "edgefault.hostPort" (list $host .Values.control.port)) -}}
{{- end -}}

{{/* Resolved probe type: http, grpc, exec or none. */}}
{{- define "edgefault.probeType" -}}
{{- $type := .Values.probes.type -}}
{{- $tls := (.Values.control.tls).secretName -}}
{{- if and $tls (or (eq $type "grpc") (eq $type "exec") (and (eq $type "auto") (not (include "edgefault.adminExposed" .)))) -}}
{{- fail "edgefault: with control.tls the probes go to the admin port over HTTP: keep admin.enabled=true with admin.host beyond loopback and probes.type auto or http (native gRPC and exec probes cannot speak TLS to the control port), or set probes.type none" -}}
{{- end -}}
{{- if eq $type "auto" -}}
{{- if include "edgefault.adminExposed" . -}}http
{{- else if include "edgefault.controlExposed" . -}}grpc
{{- else -}}exec
{{- end -}}
{{- else if and (eq $type "http") (not (include "edgefault.adminExposed" .)) -}}
{{- fail "edgefault: probes.type=http needs admin.enabled=true and admin.host beyond loopback (e.g. 0.0.0.0): the kubelet probes the pod IP" -}}
{{- else if and (eq $type "grpc") (not (include "edgefault.controlExposed" .)) -}}
{{- fail "edgefault: probes.type=grpc needs control.host beyond loopback (e.g. 0.0.0.0): the kubelet probes the pod IP" -}}
{{- else -}}
{{- $type -}}
{{- end -}}
{{- end -}}

{{/* Whether the NetworkPolicy is rendered: "true" or "". */}}
{{- define "edgefault.networkPolicyEnabled" -}}
{{- $enabled := .Values.networkPolicy.enabled -}}
{{- if eq (toString $enabled) "auto" -}}
{{- if or (include "edgefault.controlExposed" .) (include "edgefault.toxiproxyExposed" .) -}}true{{- end -}}
{{- else if $enabled -}}true
{{- end -}}
{{- end -}}

{{- define "edgefault.terminationGracePeriodSeconds" -}}
{{- add .Values.shutdown.preStopSleepSeconds .Values.shutdown.drainSeconds -}}
{{- end -}}

{{/* ---- fleet control ---- */}}

{{- define "edgefault.controller.fullname" -}}
{{- printf "%s-controller" (include "edgefault.fullname" . | trunc 52 | trimSuffix "-") -}}
{{- end -}}

{{/*
The controller's pods carry a name label of their own, so that the selectors of the proxy's Deployment,
Service, PodDisruptionBudget and NetworkPolicy (name and instance) never pick them up.
*/}}
{{- define "edgefault.controller.selectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-controller" (include "edgefault.name" . | trunc 52 | trimSuffix "-") }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end -}}

{{- define "edgefault.controller.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "edgefault.controller.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: edgefault
{{- end -}}

{{/* The Secret with the controller's tokens.yaml (and sidecar-token): the user's, or the generated one. */}}
{{- define "edgefault.controller.secretName" -}}
{{- if .Values.controller.tokens.existingSecret -}}
{{- .Values.controller.tokens.existingSecret -}}
{{- else -}}
{{- printf "%s-tokens" (include "edgefault.controller.fullname" . | trunc 56 | trimSuffix "-") -}}
{{- end -}}
{{- end -}}

{{/* Whether the edgefault pods subscribe to a controller: "true" or "". */}}
{{- define "edgefault.fleetEnabled" -}}
{{- $enabled := .Values.fleet.enabled -}}
{{- if eq (toString $enabled) "auto" -}}
{{- if .Values.controller.enabled -}}true{{- end -}}
{{- else if $enabled -}}true
{{- end -}}
{{- end -}}

{{/* The controller's URL for the sidecars: fleet.controller, else this release's controller Service. */}}
{{- define "edgefault.fleet.controllerUrl" -}}
{{- if .Values.fleet.controller -}}
{{- .Values.fleet.controller -}}
{{- else -}}
{{- printf "http://%s.%s.svc:%v" (include "edgefault.controller.fullname" .) .Release.Namespace .Values.controller.port -}}
{{- end -}}
{{- end -}}

{{/* The Secret and key of the sidecar token, as a dict of name and key. Read back with fromJson. */}}
{{- define "edgefault.fleet.tokenSecret" -}}
{{- $name := .Values.fleet.tokenSecret.name | default (include "edgefault.controller.secretName" .) -}}
{{- toJson (dict "name" $name "key" (.Values.fleet.tokenSecret.key | default "sidecar-token")) -}}
{{- end -}}

{{/* The label that lets a pod through the controller's NetworkPolicy; empty when the fleet is off. */}}
{{- define "edgefault.fleet.podLabels" -}}
{{- if include "edgefault.fleetEnabled" . -}}
edgefault.io/sidecar: "true"
{{- end -}}
{{- end -}}

{{/* Where the sidecar container finds its pod's labels and the controller token. */}}
{{- define "edgefault.fleet.labelsFile" -}}/etc/podinfo/labels{{- end -}}
{{- define "edgefault.fleet.tokenFile" -}}/etc/edgefault-controller/token{{- end -}}

{{/* Checks across values that the schema cannot express. Renders nothing, or fails. */}}
{{- define "edgefault.validate" -}}
{{- $proxy := .Values.proxy -}}
{{- if and (not $proxy.upstream) (not $proxy.routes) -}}
{{- fail "edgefault: set proxy.upstream (the http:// URL requests go to), or list proxy.routes" -}}
{{- end -}}
{{- $names := list -}}
{{- range $proxy.routes -}}
{{- if has .name $names -}}
{{- fail (printf "edgefault: proxy.routes has two routes named %q; route names must be unique" .name) -}}
{{- end -}}
{{- $names = append $names .name -}}
{{- end -}}
{{- if and $proxy.upstream (has "default" $names) -}}
{{- fail "edgefault: proxy.routes has a route named \"default\", the name of the catch-all route made from proxy.upstream; rename it" -}}
{{- end -}}
{{- $ports := list (int $proxy.port) (int .Values.control.port) -}}
{{- if .Values.admin.enabled -}}
{{- $ports = append $ports (int .Values.admin.port) -}}
{{- end -}}
{{- if (.Values.toxiproxy).enabled -}}
{{- $ports = append $ports (int .Values.toxiproxy.port) -}}
{{- if and (not (include "edgefault.isLoopback" .Values.toxiproxy.host)) (not .Values.control.tokenSecret.name) -}}
{{- fail (printf "edgefault: toxiproxy.host %s is not loopback: set control.tokenSecret.name (the API takes the control tokens); the server refuses an open Toxiproxy API" .Values.toxiproxy.host) -}}
{{- end -}}
{{- end -}}
{{- $listeners := list $proxy.listenerName -}}
{{- range .Values.tcpListeners -}}
{{- if or (has .name $listeners) (has .name $names) (and $proxy.upstream (eq .name "default")) -}}
{{- fail (printf "edgefault: tcpListeners has %q, already the name of a listener or route; names must be unique" .name) -}}
{{- end -}}
{{- $listeners = append $listeners .name -}}
{{- $ports = append $ports (int .port) -}}
{{- end -}}
{{- if and (not (include "edgefault.isLoopback" .Values.control.host)) (not .Values.control.tokenSecret.name) (not (.Values.control.tls).clientCASecretName) -}}
{{- fail (printf "edgefault: control.host %s is not loopback: set control.tokenSecret.name (a Secret with an admin token) or control.tls with clientCASecretName (mTLS); the server refuses to start with an open control port and no authentication" .Values.control.host) -}}
{{- end -}}
{{- if include "edgefault.fleetEnabled" . -}}
{{- if and (not .Values.controller.enabled) (not .Values.fleet.controller) -}}
{{- fail "edgefault: fleet.enabled=true needs fleet.controller (the URL of the controller, http://host:port) or controller.enabled=true (the controller of this release)" -}}
{{- end -}}
{{- if and (not .Values.controller.enabled) (not .Values.fleet.tokenSecret.name) -}}
{{- fail "edgefault: fleet.controller is a controller outside this release: set fleet.tokenSecret.name (and key), a Secret holding a token of role sidecar of that controller" -}}
{{- end -}}
{{- end -}}
{{- if ne (len $ports) (len (uniq $ports)) -}}
{{- fail (printf "edgefault: proxy.port, control.port, admin.port, toxiproxy.port and the tcpListeners ports must differ (got %s)" (join ", " $ports)) -}}
{{- end -}}
{{- end -}}
