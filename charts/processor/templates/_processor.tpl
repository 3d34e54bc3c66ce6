{{- define "keda-demo.processor.triggerSecretName" -}}
{{- printf "%s-keda" (include "keda-demo.fullname" (dict "root" . "component" "processor")) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The processor's parts of its pod template (keda-demo.podTemplate in keda-demo-lib). Take $. */}}

{{- define "keda-demo.processor.podSpec" -}}
# One attempt per pod: a retry is a new pod, counted against the Job's backoffLimit.
restartPolicy: Never
{{- end -}}

{{- define "keda-demo.processor.env" -}}
- name: WORK_DURATION
  value: {{ printf "%ds" (int .Values.workDurationSeconds) | quote }}
- name: MAX_DELIVERIES
  value: {{ .Values.maxDeliveries | toString | quote }}
# The Job's name, which records keep after KEDA deletes the Job: the Job controller labels its pods.
- name: JOB_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.labels['batch.kubernetes.io/job-name']
{{- end -}}
