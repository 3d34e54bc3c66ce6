{{/* The app's parts of its pod template (keda-demo.podTemplate in keda-demo-lib). Take $. */}}

{{- define "keda-demo.app.podSpec" -}}
# The preStop sleep plus SHUTDOWN_TIMEOUT plus a margin: the grace period runs from the start of
# the preStop hook, and the app must finish in-flight requests before SIGKILL.
terminationGracePeriodSeconds: {{ add .Values.preStopSleepSeconds .Values.shutdownTimeoutSeconds .Values.terminationGraceMarginSeconds }}
{{- end -}}

{{- define "keda-demo.app.env" -}}
- name: HTTP_ADDR
  value: {{ printf ":%d" (int .Values.containerPort) | quote }}
- name: MAX_CONTENT_BYTES
  value: {{ .Values.maxContentBytes | int64 | toString | quote }}
- name: PUBLISH_TIMEOUT
  value: {{ .Values.publishTimeout | quote }}
- name: SHUTDOWN_TIMEOUT
  value: {{ printf "%ds" (int .Values.shutdownTimeoutSeconds) | quote }}
- name: LIVE_MAX_CLIENTS
  value: {{ .Values.dashboard.maxClients | toString | quote }}
- name: LIVE_HEARTBEAT
  value: {{ .Values.dashboard.heartbeat | quote }}
{{- if .Values.dashboard.jobs.enabled }}
# KEDA labels every Job of a ScaledJob with scaledjob.keda.sh/name.
- name: JOBS_SELECTOR
  value: {{ printf "scaledjob.keda.sh/name=%s" (include "keda-demo.fullname" (dict "root" . "component" "processor")) | quote }}
{{- end }}
{{- end -}}

{{- define "keda-demo.app.container" -}}
{{- if gt (int .Values.preStopSleepSeconds) 0 }}
# Keep serving while the endpoint removal reaches every proxy, then SIGTERM (graceful shutdown).
# The sleep action is the kubelet's own (no shell in the image): on by default since 1.30, GA in 1.34.
lifecycle:
  preStop:
    sleep:
      seconds: {{ .Values.preStopSleepSeconds }}
{{- end }}
ports:
  - name: http
    containerPort: {{ .Values.containerPort }}
    protocol: TCP
livenessProbe:
  httpGet:
    path: /healthz
    port: http
  periodSeconds: {{ .Values.probes.liveness.periodSeconds }}
  failureThreshold: {{ .Values.probes.liveness.failureThreshold }}
readinessProbe:
  httpGet:
    path: /readyz
    port: http
  periodSeconds: {{ .Values.probes.readiness.periodSeconds }}
  failureThreshold: {{ .Values.probes.readiness.failureThreshold }}
{{- end -}}
