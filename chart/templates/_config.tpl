{{/*
edgefault.yaml, the file `edgefault serve --config` reads. Values use camelCase; the file uses snake_case.
*/}}
{{- define "edgefault.config" -}}
{{- $proxy := .Values.proxy -}}
listeners:
  - name: {{ $proxy.listenerName | quote }}
    bind: {{ include "edgefault.hostPort" (list $proxy.host $proxy.port) | quote }}
    mode: reverse
    {{- with ($proxy.tls).secretName }}
    tls:
      cert_file: /etc/edgefault-tls/listener/tls.crt
      key_file: /etc/edgefault-tls/listener/tls.key
      {{- if ($proxy.tls).faultIssuerSecretName }}
      fault_issuer:
        cert_file: /etc/edgefault-tls/fault-issuer/tls.crt
        key_file: /etc/edgefault-tls/fault-issuer/tls.key
      {{- end }}
    {{- else }}
    {{- if ($proxy.tls).faultIssuerSecretName }}
    {{- fail "edgefault: proxy.tls.faultIssuerSecretName needs proxy.tls.secretName (TLS faults act on a listener that serves HTTPS)" }}
    {{- end }}
    {{- end }}
    routes:
      {{- range $proxy.routes }}
      - name: {{ .name | quote }}
        {{- with .hosts }}
        hosts: {{ toJson . }}
        {{- end }}
        {{- with .pathPrefix }}
        path_prefix: {{ . | quote }}
        {{- end }}
        upstream: {{ .upstream | quote }}
        protocol: {{ default $proxy.protocol .protocol }}
        connect_timeout: {{ default $proxy.connectTimeout .connectTimeout }}
        timeout: {{ default $proxy.timeout .timeout }}
      {{- end }}
      {{- if $proxy.upstream }}
      - name: default
        upstream: {{ $proxy.upstream | quote }}
        protocol: {{ $proxy.protocol }}
        connect_timeout: {{ $proxy.connectTimeout }}
        timeout: {{ $proxy.timeout }}
      {{- end }}
  {{- range .Values.tcpListeners }}
  - name: {{ .name | quote }}
    bind: {{ include "edgefault.hostPort" (list $proxy.host .port) | quote }}
    mode: tcp
    upstream: {{ .upstream | quote }}
    connect_timeout: {{ default "5s" .connectTimeout }}
  {{- end }}
control:
  bind: {{ include "edgefault.hostPort" (list .Values.control.host .Values.control.port) | quote }}
  {{- with (.Values.control.tls).secretName }}
  tls:
    cert_file: /etc/edgefault-tls/control/tls.crt
    key_file: /etc/edgefault-tls/control/tls.key
    {{- if ($.Values.control.tls).clientCASecretName }}
    client_ca_file: {{ printf "/etc/edgefault-tls/control-clients/%s" (default "ca.crt" $.Values.control.tls.clientCAKey) | quote }}
    {{- end }}
  {{- else }}
  {{- if (.Values.control.tls).clientCASecretName }}
  {{- fail "edgefault: control.tls.clientCASecretName needs control.tls.secretName (mTLS is TLS with client certificates)" }}
  {{- end }}
  {{- end }}
{{- if .Values.admin.enabled }}
admin:
  bind: {{ include "edgefault.hostPort" (list .Values.admin.host .Values.admin.port) | quote }}
{{- end }}
{{- if (.Values.toxiproxy).enabled }}
toxiproxy:
  bind: {{ include "edgefault.hostPort" (list .Values.toxiproxy.host .Values.toxiproxy.port) | quote }}
  max_proxies: {{ .Values.toxiproxy.maxProxies }}
{{- end }}
limits:
  default_duration: {{ .Values.limits.defaultDuration }}
  max_duration: {{ .Values.limits.maxDuration }}
  history: {{ .Values.limits.history }}
{{- if not (kindIs "invalid" .Values.workers) }}
workers: {{ .Values.workers }}
{{- end }}
{{- with .Values.experiments }}
experiments:
  {{- toYaml . | nindent 2 }}
{{- else }}
experiments: []
{{- end }}
{{- end -}}
