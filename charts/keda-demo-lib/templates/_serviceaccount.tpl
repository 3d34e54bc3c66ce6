{{/*
The ServiceAccount of the app and of the processor, and the name their pods run as. Each helper
takes a dict with
  root       the subchart's $; serviceAccount is read from its .Values, which both subcharts
             name alike
  component  "app" or "processor": the name and the labels
*/}}

{{/* The ServiceAccount a component's pods run as: serviceAccount.name, else <release>-<component>
when the chart creates it, else the namespace's "default". */}}
{{- define "keda-demo.serviceAccountName" -}}
{{- $sa := .root.Values.serviceAccount -}}
{{- if $sa.create -}}
{{- $sa.name | default (include "keda-demo.fullname" .) -}}
{{- else -}}
{{- $sa.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/* The ServiceAccount itself, when serviceAccount.create. It mounts no token by default: only
a pod template that needs the Kubernetes API asks for one (the app's, for its Jobs view). */}}
{{- define "keda-demo.serviceAccount" -}}
{{- if .root.Values.serviceAccount.create }}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "keda-demo.serviceAccountName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "keda-demo.labels" . | nindent 4 }}
  {{- with .root.Values.serviceAccount.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
automountServiceAccountToken: false
{{- end }}
{{- end -}}
