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
{{- include "edgefault.controlExposed" . -}}
{{- else if $enabled -}}true
{{- end -}}
{{- end -}}

{{- define "edgefault.terminationGracePeriodSeconds" -}}
{{- add .Values.shutdown.preStopSleepSeconds .Values.shutdown.drainSeconds -}}
{{- end -}}

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
{{- if ne (len $ports) (len (uniq $ports)) -}}
{{- fail (printf "edgefault: proxy.port, control.port, admin.port and the tcpListeners ports must differ (got %s)" (join ", " $ports)) -}}
{{- end -}}
{{- end -}}
