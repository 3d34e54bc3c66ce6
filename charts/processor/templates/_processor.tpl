{{- define "keda-demo.processor.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "keda-demo.fullname" (dict "root" . "component" "processor")) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{- define "keda-demo.processor.triggerSecretName" -}}
{{- printf "%s-keda" (include "keda-demo.fullname" (dict "root" . "component" "processor")) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
