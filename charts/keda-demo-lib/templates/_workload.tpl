{{/*
What the app Deployment and the processor ScaledJob share, written once: their pod template and
their ServiceAccount. Each helper takes a dict with
  root       the subchart's $; image, logLevel, resources and serviceAccount are read from
             its .Values, which both subcharts name alike
  component  "app" or "processor": the name, the labels and the container's name
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
a pod template that needs the Kubernetes API asks for one (automountToken below). */}}
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

{{/*
The pod template (metadata + spec) of one of our two programs: labels, the restricted security
contexts, the image, the connection env, the CA bundles and the scheduling values. Besides root
and component it takes
  pod           the values that hold podLabels, podAnnotations, priorityClassName,
                nodeSelector, tolerations, affinity and topologySpreadConstraints (.Values for
                the app, .Values.job for the processor); a key that is absent is left out
  automountToken  true to mount the ServiceAccount's token (only the app, for its Jobs view);
                absent or false mounts none
and, for what differs per workload, optional YAML fragments (strings, e.g. from include):
  podSpec       more pod spec fields (restartPolicy, terminationGracePeriodSeconds, …)
  container     more container fields (ports, probes, lifecycle hooks, …)
  env           more env entries, after the connection env and LOG_LEVEL
  volumeMounts  more volume mounts, after the CA bundles'
  volumes       more volumes, after the CA bundles'
*/}}
{{- define "keda-demo.podTemplate" -}}
{{- $root := .root -}}
{{- $ctx := dict "root" $root "component" .component -}}
{{- $v := $root.Values -}}
metadata:
  labels:
    {{- include "keda-demo.labels" $ctx | nindent 4 }}
    {{- with .pod.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .pod.podAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  {{- with .podSpec }}
  {{- . | trim | nindent 2 }}
  {{- end }}
  serviceAccountName: {{ include "keda-demo.serviceAccountName" $ctx }}
  automountServiceAccountToken: {{ .automountToken | default false }}
  {{- with (include "keda-demo.imagePullSecrets" $root | trim) }}{{ . | nindent 2 }}{{ end }}
  securityContext:
    {{- include "keda-demo.podSecurityContext" $root | nindent 4 }}
  containers:
    - name: {{ .component }}
      image: {{ include "keda-demo.image" (dict "root" $root "image" $v.image) | quote }}
      imagePullPolicy: {{ $v.image.pullPolicy }}
      securityContext:
        {{- include "keda-demo.containerSecurityContext" $root | nindent 8 }}
      env:
        {{- include "keda-demo.connectionEnv" $root | trim | nindent 8 }}
        - name: LOG_LEVEL
          value: {{ $v.logLevel | quote }}
        {{- with .env }}
        {{- . | trim | nindent 8 }}
        {{- end }}
      {{- with .container }}
      {{- . | trim | nindent 6 }}
      {{- end }}
      {{- with $v.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with (list (include "keda-demo.caVolumeMounts" $root) (.volumeMounts | default "") | join "\n" | trim) }}
      volumeMounts:
        {{- . | nindent 8 }}
      {{- end }}
  {{- with (list (include "keda-demo.caVolumes" $root) (.volumes | default "") | join "\n" | trim) }}
  volumes:
    {{- . | nindent 4 }}
  {{- end }}
  {{- $pod := .pod }}
  {{- with $pod.priorityClassName }}
  priorityClassName: {{ . | quote }}
  {{- end }}
  {{- range $key := list "nodeSelector" "tolerations" "affinity" }}
  {{- with index $pod $key }}
  {{ $key }}:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- end }}
  {{- /* A constraint without labelSelector counts this release's pods of the component only:
  a selector on the name alone would spread two releases in a namespace against each other. */}}
  {{- with $pod.topologySpreadConstraints }}
  {{- $own := dict "labelSelector" (dict "matchLabels" (include "keda-demo.selectorLabels" $ctx | fromYaml)) }}
  {{- $tsc := list }}
  {{- range . }}
  {{- $tsc = append $tsc (ternary . (merge (deepCopy $own) .) (hasKey . "labelSelector")) }}
  {{- end }}
  topologySpreadConstraints:
    {{- toYaml $tsc | nindent 4 }}
  {{- end }}
{{- end -}}
