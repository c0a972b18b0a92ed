{{/*
Sidecar mode: the named templates an application chart includes in its own pod template, after adding this
chart as a dependency named "edgefault" (no alias) and setting edgefault.mode=sidecar and
edgefault.proxy.upstream (the application container on localhost). Each takes the application chart's root
context:

  metadata:
    labels:
      app.kubernetes.io/name: ...
      {{- include "edgefault.sidecar.podLabels" . | nindent 6 }}
    annotations:
      {{- include "edgefault.sidecar.podAnnotations" . | nindent 6 }}
  spec:
    terminationGracePeriodSeconds: {{ include "edgefault.sidecar.terminationGracePeriodSeconds" . }}
    containers:
      - name: app
        ...
      {{- include "edgefault.sidecar.container" . | nindent 6 }}
    volumes:
      {{- include "edgefault.sidecar.volumes" . | nindent 6 }}

The application's Service then targets the port named edgefault-http. The ConfigMap the volume mounts is
rendered by this chart (templates/configmap.yaml).
*/}}

{{/*
The context of the edgefault chart: the caller's own when it is this chart, else one built from the
application chart's .Values.edgefault (its copy of this chart's values, defaults merged in).
Renders a JSON object of Values, Release and Chart, which the callers read back with fromJson.
*/}}
{{- define "edgefault.sidecar.context" -}}
{{- if hasKey .Values "edgefault" -}}
{{- toJson (dict "Values" .Values.edgefault "Release" (dict "Name" .Release.Name "Namespace" .Release.Namespace "Service" .Release.Service) "Chart" (dict "Name" .Subcharts.edgefault.Chart.Name "Version" .Subcharts.edgefault.Chart.Version "AppVersion" .Subcharts.edgefault.Chart.AppVersion)) -}}
{{- else -}}
{{- toJson (dict "Values" .Values "Release" (dict "Name" .Release.Name "Namespace" .Release.Namespace "Service" .Release.Service) "Chart" (dict "Name" .Chart.Name "Version" .Chart.Version "AppVersion" .Chart.AppVersion)) -}}
{{- end -}}
{{- end -}}

{{- define "edgefault.sidecar.container" -}}
{{- $ctx := include "edgefault.sidecar.context" . | fromJson -}}
{{- include "edgefault.sidecar.requireMode" $ctx -}}
- {{ include "edgefault.container" $ctx | nindent 2 | trim }}
{{- end -}}

{{- define "edgefault.sidecar.volumes" -}}
{{- $ctx := include "edgefault.sidecar.context" . | fromJson -}}
{{- include "edgefault.sidecar.requireMode" $ctx -}}
{{ include "edgefault.volumes" $ctx }}
{{- end -}}

{{/*
The pod label edgefault.io/sidecar: "true" when the sidecar subscribes to a fleet controller (fleet), which
the controller's NetworkPolicy admits; nothing otherwise. Include it under the pod template's labels.
*/}}
{{- define "edgefault.sidecar.podLabels" -}}
{{- $ctx := include "edgefault.sidecar.context" . | fromJson -}}
{{- include "edgefault.fleet.podLabels" $ctx -}}
{{- end -}}

{{/* Restarts the pods when the edgefault config changes. */}}
{{- define "edgefault.sidecar.podAnnotations" -}}
{{- $ctx := include "edgefault.sidecar.context" . | fromJson -}}
checksum/edgefault-config: {{ include "edgefault.config" $ctx | sha256sum }}
{{- end -}}

{{/* preStop sleep + drain time: use it, or a larger value, as the pod's terminationGracePeriodSeconds. */}}
{{- define "edgefault.sidecar.terminationGracePeriodSeconds" -}}
{{- $ctx := include "edgefault.sidecar.context" . | fromJson -}}
{{- include "edgefault.terminationGracePeriodSeconds" $ctx -}}
{{- end -}}

{{- define "edgefault.sidecar.requireMode" -}}
{{- if ne .Values.mode "sidecar" -}}
{{- fail "edgefault: the sidecar templates need edgefault.mode=sidecar in the application chart's values (in gateway mode the edgefault chart renders a Deployment of its own)" -}}
{{- end -}}
{{- end -}}
