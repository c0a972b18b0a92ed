{{/*
The edgefault container and its volume, shared by the gateway Deployment and the sidecar templates.
*/}}
{{- define "edgefault.container" -}}
{{- $probeType := include "edgefault.probeType" . -}}
name: edgefault
image: {{ include "edgefault.image" . | quote }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
args:
  - serve
  - --config
  - /etc/edgefault/edgefault.yaml
  - --log-format
  - {{ .Values.logFormat }}
  - --drain-grace
  - {{ printf "%ds" (int .Values.shutdown.drainSeconds) }}
  {{- if include "edgefault.fleetEnabled" . }}
  - --controller
  - {{ include "edgefault.fleet.controllerUrl" . | quote }}
  - --labels-file
  - {{ include "edgefault.fleet.labelsFile" . }}
  - --controller-grace
  - {{ .Values.fleet.grace | quote }}
  - --controller-token-file
  - {{ include "edgefault.fleet.tokenFile" . }}
  {{- range $key, $value := .Values.fleet.labels }}
  - --label
  - {{ printf "%s=%s" $key $value | quote }}
  {{- end }}
  {{- end }}
ports:
  - name: edgefault-http
    containerPort: {{ .Values.proxy.port }}
    protocol: TCP
  {{- range $i, $l := .Values.tcpListeners }}
  - name: {{ printf "edgefault-tcp%d" $i }}
    containerPort: {{ $l.port }}
    protocol: TCP
  {{- end }}
  {{- if include "edgefault.adminExposed" . }}
  - name: edgefault-admin
    containerPort: {{ .Values.admin.port }}
    protocol: TCP
  {{- end }}
  {{- if include "edgefault.toxiproxyExposed" . }}
  - name: edgefault-toxi
    containerPort: {{ .Values.toxiproxy.port }}
    protocol: TCP
  {{- end }}
  {{- if include "edgefault.controlExposed" . }}
  - name: edgefault-ctl
    containerPort: {{ .Values.control.port }}
    protocol: TCP
  {{- end }}
{{- if or .Values.extraEnv .Values.control.tokenSecret.name (include "edgefault.fleetEnabled" .) }}
env:
  {{- if include "edgefault.fleetEnabled" . }}
  # The sidecar's id in the fleet.
  - name: POD_NAME
    valueFrom:
      fieldRef:
        fieldPath: metadata.name
  {{- end }}
  {{- with .Values.control.tokenSecret.name }}
  {{- include "edgefault.tokenEnv" (list "EDGEFAULT_ADMIN_TOKEN" $.Values.control.tokenSecret) | nindent 2 }}
  {{- include "edgefault.tokenEnv" (list "EDGEFAULT_TOKEN" $.Values.control.tokenSecret) | nindent 2 }}
  {{- end }}
  {{- with .Values.extraEnv }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}
{{- if ne $probeType "none" }}
readinessProbe:
  {{- include "edgefault.probeAction" (list . $probeType "/readyz") | nindent 2 }}
  {{- toYaml .Values.probes.readiness | nindent 2 }}
livenessProbe:
  {{- include "edgefault.probeAction" (list . $probeType "/healthz") | nindent 2 }}
  {{- toYaml .Values.probes.liveness | nindent 2 }}
{{- end }}
{{- if gt (int .Values.shutdown.preStopSleepSeconds) 0 }}
lifecycle:
  preStop:
    sleep:
      seconds: {{ .Values.shutdown.preStopSleepSeconds }}
{{- end }}
{{- with .Values.resources }}
resources:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
volumeMounts:
  - name: edgefault-config
    mountPath: /etc/edgefault
    readOnly: true
  {{- if include "edgefault.fleetEnabled" . }}
  - name: edgefault-podinfo
    mountPath: {{ include "edgefault.fleet.labelsFile" . | dir }}
    readOnly: true
  - name: edgefault-controller-token
    mountPath: {{ include "edgefault.fleet.tokenFile" . | dir }}
    readOnly: true
  {{- end }}
  {{- if (.Values.control.tls).secretName }}
  - name: edgefault-control-tls
    mountPath: /etc/edgefault-tls/control
    readOnly: true
  {{- if (.Values.control.tls).clientCASecretName }}
  - name: edgefault-control-clients
    mountPath: /etc/edgefault-tls/control-clients
    readOnly: true
  {{- end }}
  {{- end }}
  {{- if (.Values.proxy.tls).secretName }}
  - name: edgefault-tls
    mountPath: /etc/edgefault-tls/listener
    readOnly: true
  {{- if (.Values.proxy.tls).faultIssuerSecretName }}
  - name: edgefault-fault-issuer
    mountPath: /etc/edgefault-tls/fault-issuer
    readOnly: true
  {{- end }}
  {{- end }}
{{- end -}}

{{/* One probe's action. Takes (list context type httpPath). */}}
{{- define "edgefault.probeAction" -}}
{{- $ctx := index . 0 -}}
{{- $type := index . 1 -}}
{{- if eq $type "http" -}}
httpGet:
  path: {{ index . 2 }}
  port: edgefault-admin
{{- else if eq $type "grpc" -}}
grpc:
  port: {{ $ctx.Values.control.port }}
{{- else -}}
exec:
  command:
    - /usr/local/bin/edgefault
    - ctl
    - --control
    - {{ include "edgefault.localControlUrl" $ctx }}
    - list
{{- end -}}
{{- end -}}

{{- define "edgefault.volumes" -}}
- name: edgefault-config
  configMap:
    name: {{ include "edgefault.configMapName" . }}
{{- if include "edgefault.fleetEnabled" . }}
{{- $token := include "edgefault.fleet.tokenSecret" . | fromJson }}
- name: edgefault-podinfo
  downwardAPI:
    items:
      - path: {{ include "edgefault.fleet.labelsFile" . | base }}
        fieldRef:
          fieldPath: metadata.labels
- name: edgefault-controller-token
  secret:
    secretName: {{ $token.name | quote }}
    items:
      - key: {{ $token.key | quote }}
        path: {{ include "edgefault.fleet.tokenFile" . | base }}
{{- end }}
{{- with (.Values.control.tls).secretName }}
- name: edgefault-control-tls
  secret:
    secretName: {{ . | quote }}
{{- with ($.Values.control.tls).clientCASecretName }}
- name: edgefault-control-clients
  secret:
    secretName: {{ . | quote }}
{{- end }}
{{- end }}
{{- with (.Values.proxy.tls).secretName }}
- name: edgefault-tls
  secret:
    secretName: {{ . | quote }}
{{- with ($.Values.proxy.tls).faultIssuerSecretName }}
- name: edgefault-fault-issuer
  secret:
    secretName: {{ . | quote }}
{{- end }}
{{- end }}
{{- end -}}
