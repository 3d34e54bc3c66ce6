{{/*
keda-demo-lib: the one set of helpers of the keda-demo umbrella chart, its app and processor
subcharts and its helm test. Helm makes every named template of a release visible to all of its
charts, so these are defined once here and never copied: this file holds names, labels, images,
security contexts, the connection env and the CA bundles; _serviceaccount.tpl the ServiceAccount
of app and processor. Each workload's pod spec is written out in its own template
(charts/app/templates/deployment.yaml, charts/processor/templates/scaledjob.yaml).

Conventions: helpers that name or label a component take (dict "root" $ "component" "app");
the others take the chart's root context ($). Everything shared between the charts is read from
.Values.global.kedaDemo, the only values a subchart can see besides its own.
*/}}

{{/* Embedded-mode identities: fixed, because the subcharts cannot read the umbrella's bitnami
values. The umbrella sets mongodb.auth.usernames/databases and rabbitmq.auth.username to these
and fails the render if they are changed (templates/_validate.tpl). */}}
{{- define "keda-demo.embedded.mongodbUser" -}}keda_demo{{- end -}}
{{- define "keda-demo.embedded.mongodbDatabase" -}}keda_demo{{- end -}}
{{- define "keda-demo.embedded.rabbitmqUser" -}}keda-demo{{- end -}}

{{/* <release>-<component>, at most 63 characters: predictable names (the helm test, NOTES and
the README rely on <release>-app being the app's Service). */}}
{{- define "keda-demo.fullname" -}}
{{- printf "%s-%s" .root.Release.Name .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "keda-demo.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* app.kubernetes.io/name of a component: keda-demo-<component> (keda-demo-app,
keda-demo-processor), a name of its own in the whole cluster as kube-state-metrics or
keda-operator are; a bare "app" would be matched by every other chart's app. */}}
{{- define "keda-demo.name" -}}
{{- printf "keda-demo-%s" .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* What selects a component's pods in this release (Deployment, Service, PDB, NetworkPolicy,
spread constraints): never global.kedaDemo.commonLabels, since a Deployment's selector is
immutable. */}}
{{- define "keda-demo.selectorLabels" -}}
app.kubernetes.io/name: {{ include "keda-demo.name" . }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{/* The labels of every object of ours and of our pods: the chart's own, then
global.kedaDemo.commonLabels, and over those the object's own extra labels when given as
"extra" (podLabels, serviceMonitor.labels, …). _validate.tpl refuses commonLabels that would
repeat one of the chart's own keys. */}}
{{- define "keda-demo.labels" -}}
helm.sh/chart: {{ include "keda-demo.chart" .root }}
{{ include "keda-demo.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: keda-demo
app.kubernetes.io/component: {{ .component }}
{{- with merge (deepCopy (.extra | default dict)) (deepCopy (.root.Values.global.kedaDemo.commonLabels | default dict)) }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Same naming rule as bitnami's common.names.fullname (bitnami/common templates/_names.tpl):
<release>-<chart>, or <release> when the release name already contains the chart name. The
umbrella refuses nameOverride/fullnameOverride for mongodb and rabbitmq, so this is exact.
Takes (dict "root" $ "chart" "mongodb"). */}}
{{- define "keda-demo.bitnamiFullname" -}}
{{- if contains .chart .root.Release.Name -}}
{{- .root.Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .root.Release.Name .chart | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Image reference of one of our two programs. Takes (dict "root" $ "image" .Values.image).
global.kedaDemo.imageRegistry prefixes OUR images only — never global.imageRegistry, which the
bitnami charts read too. The tag defaults to the chart's appVersion; a digest pins it. */}}
{{- define "keda-demo.image" -}}
{{- $registry := .root.Values.global.kedaDemo.imageRegistry | default "" | trimSuffix "/" -}}
{{- $repository := .image.repository -}}
{{- if $registry -}}{{- $repository = printf "%s/%s" $registry $repository -}}{{- end -}}
{{- $tag := .image.tag | default .root.Chart.AppVersion | toString -}}
{{- if .image.digest -}}
{{- printf "%s:%s@%s" $repository $tag .image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "keda-demo.registrySecretName" -}}
{{- printf "%s-registry" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* imagePullSecrets of a pod spec: global.kedaDemo.imagePullSecrets plus the chart-managed
registry Secret when global.kedaDemo.registryCredentials.create. Takes $. */}}
{{- define "keda-demo.imagePullSecrets" -}}
{{- $k := .Values.global.kedaDemo -}}
{{- $names := list -}}
{{- range $k.imagePullSecrets -}}{{- $names = append $names .name -}}{{- end -}}
{{- if $k.registryCredentials.create -}}{{- $names = append $names (include "keda-demo.registrySecretName" .) -}}{{- end -}}
{{- with $names }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end -}}
{{- end -}}

{{/* The restricted Pod Security Standard, for every pod of the release (not configurable):
the images run as uid/gid 65532 and write nothing to disk. */}}
{{- define "keda-demo.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "keda-demo.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/*
How the programs and KEDA reach RabbitMQ, as YAML (use with fromYaml). Takes $.
Embedded (the bitnami subchart): <release>-rabbitmq.<namespace>.svc:5672, user keda-demo,
password in Secret <release>-rabbitmq key rabbitmq-password (bitnami rabbitmq 16.0.14
templates/secrets.yaml, key name from templates/_helpers.tpl "rabbitmq.secretPasswordName").
External: global.kedaDemo.externalRabbitmq.* — chosen as soon as its host or urlSecret.name is set.
*/}}
{{- define "keda-demo.rabbitmq" -}}
{{- $e := .Values.global.kedaDemo.externalRabbitmq -}}
{{- if or $e.host $e.urlSecret.name -}}
external: true
urlSecret: {{ dict "name" $e.urlSecret.name "key" $e.urlSecret.key | toJson }}
host: {{ $e.host | quote }}
port: {{ $e.port | default (ternary 5671 5672 (eq (toString $e.tls.enabled) "true")) | int }}
vhost: {{ $e.vhost | quote }}
username: {{ $e.username | quote }}
password: {{ dict "name" $e.existingSecret "key" $e.existingSecretPasswordKey | toJson }}
tls: {{ $e.tls.enabled }}
caSecret: {{ $e.tls.caSecret | quote }}
caKey: {{ $e.tls.caKey | quote }}
managementPort: {{ $e.managementPort | int }}
{{- else -}}
{{- $name := include "keda-demo.bitnamiFullname" (dict "root" . "chart" "rabbitmq") -}}
external: false
urlSecret: {"name": "", "key": ""}
host: {{ printf "%s.%s.svc" $name .Release.Namespace | quote }}
port: 5672
vhost: "/"
username: {{ include "keda-demo.embedded.rabbitmqUser" . | quote }}
password: {{ dict "name" $name "key" "rabbitmq-password" | toJson }}
tls: false
caSecret: ""
caKey: ""
managementPort: 15672
{{- end -}}
{{- end -}}

{{/*
How the programs reach MongoDB, as YAML (use with fromYaml). Takes $.
Embedded: <release>-mongodb.<namespace>.svc:27017 (standalone Service = fullname), or, with
global.kedaDemo.embeddedMongodb.replicaSetMembers, every member of the replica set by its stable
name <release>-mongodb-<i>.<release>-mongodb-headless (bitnami templates/replicaset: StatefulSet
and headless Service; the driver needs the seed list and the set's name). The app's own
least-privilege user keda_demo in database keda_demo (bitnami auth.usernames/databases create the
user in its database, so that is also the authSource), password in Secret <release>-mongodb key
mongodb-passwords (bitnami mongodb 16.5.45 templates/secrets.yaml; not the root password).
External: global.kedaDemo.externalMongodb.* — chosen as soon as its host or uriSecret.name is set.
*/}}
{{- define "keda-demo.mongodb" -}}
{{- $e := .Values.global.kedaDemo.externalMongodb -}}
{{- if or $e.host $e.uriSecret.name -}}
external: true
uriSecret: {{ dict "name" $e.uriSecret.name "key" $e.uriSecret.key | toJson }}
host: {{ $e.host | quote }}
replicaSet: ""
port: {{ $e.port | int }}
username: {{ $e.username | quote }}
authSource: {{ $e.authSource | quote }}
database: {{ $e.database | quote }}
password: {{ dict "name" $e.existingSecret "key" $e.existingSecretPasswordKey | toJson }}
tls: {{ $e.tls.enabled }}
caSecret: {{ $e.tls.caSecret | quote }}
caKey: {{ $e.tls.caKey | quote }}
{{- else -}}
{{- $name := include "keda-demo.bitnamiFullname" (dict "root" . "chart" "mongodb") -}}
{{- $rs := .Values.global.kedaDemo.embeddedMongodb -}}
external: false
uriSecret: {"name": "", "key": ""}
{{- if $rs.replicaSetMembers }}
{{- $members := list }}
{{- range $i := until (int $rs.replicaSetMembers) }}
{{- $members = append $members (printf "%s-%d.%s-headless.%s.svc.cluster.local:27017" $name $i $name $.Release.Namespace) }}
{{- end }}
host: {{ join "," $members | quote }}
replicaSet: {{ $rs.replicaSetName | quote }}
{{- else }}
host: {{ printf "%s.%s.svc" $name .Release.Namespace | quote }}
replicaSet: ""
{{- end }}
port: 27017
username: {{ include "keda-demo.embedded.mongodbUser" . | quote }}
authSource: {{ include "keda-demo.embedded.mongodbDatabase" . | quote }}
database: {{ include "keda-demo.embedded.mongodbDatabase" . | quote }}
password: {{ dict "name" $name "key" "mongodb-passwords" | toJson }}
tls: false
caSecret: ""
caKey: ""
{{- end -}}
{{- end -}}

{{- define "keda-demo.caDir" -}}/etc/keda-demo/{{ . }}-ca{{- end -}}

{{/*
The connection environment both programs share — exactly the README's Configuration table.
Parts, never URLs built with $(VAR) (Kubernetes does not escape them): the programs build the
URL with percent-escaping, so passwords like P@ssw0rd work. A full URL/URI only ever comes from
an existing Secret. Takes $.
*/}}
{{- define "keda-demo.connectionEnv" -}}
{{- $r := include "keda-demo.rabbitmq" . | fromYaml -}}
{{- $m := include "keda-demo.mongodb" . | fromYaml -}}
{{- if $r.urlSecret.name }}
- name: RABBITMQ_URL
  valueFrom:
    secretKeyRef:
      name: {{ $r.urlSecret.name }}
      key: {{ $r.urlSecret.key }}
{{- else }}
- name: RABBITMQ_HOST
  value: {{ $r.host | quote }}
- name: RABBITMQ_PORT
  value: {{ $r.port | toString | quote }}
- name: RABBITMQ_VHOST
  value: {{ $r.vhost | quote }}
- name: RABBITMQ_USERNAME
  value: {{ $r.username | quote }}
- name: RABBITMQ_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $r.password.name }}
      key: {{ $r.password.key }}
- name: RABBITMQ_TLS
  value: {{ $r.tls | toString | quote }}
{{- end }}
{{- if and $r.tls $r.caSecret }}
- name: RABBITMQ_CA_FILE
  value: {{ printf "%s/%s" (include "keda-demo.caDir" "rabbitmq") $r.caKey | quote }}
{{- end }}
- name: QUEUE_NAME
  value: {{ .Values.global.kedaDemo.queueName | quote }}
{{- if $m.uriSecret.name }}
- name: MONGODB_URI
  valueFrom:
    secretKeyRef:
      name: {{ $m.uriSecret.name }}
      key: {{ $m.uriSecret.key }}
{{- else }}
- name: MONGODB_HOST
  value: {{ $m.host | quote }}
- name: MONGODB_PORT
  value: {{ $m.port | toString | quote }}
{{- if $m.replicaSet }}
- name: MONGODB_REPLICA_SET
  value: {{ $m.replicaSet | quote }}
{{- end }}
{{- if $m.username }}
- name: MONGODB_USERNAME
  value: {{ $m.username | quote }}
- name: MONGODB_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $m.password.name }}
      key: {{ $m.password.key }}
{{- end }}
- name: MONGODB_AUTH_SOURCE
  value: {{ $m.authSource | quote }}
- name: MONGODB_TLS
  value: {{ $m.tls | toString | quote }}
{{- end }}
{{- if and $m.tls $m.caSecret }}
- name: MONGODB_CA_FILE
  value: {{ printf "%s/%s" (include "keda-demo.caDir" "mongodb") $m.caKey | quote }}
{{- end }}
- name: MONGODB_DATABASE
  value: {{ $m.database | quote }}
- name: MONGODB_COLLECTION
  value: {{ .Values.global.kedaDemo.mongodbCollection | quote }}
{{- end -}}

{{/* CA bundles (TLS to external services) mounted read-only from their Secrets. Takes $. */}}
{{- define "keda-demo.caVolumes" -}}
{{- $r := include "keda-demo.rabbitmq" . | fromYaml -}}
{{- $m := include "keda-demo.mongodb" . | fromYaml -}}
{{- if and $r.tls $r.caSecret }}
- name: rabbitmq-ca
  secret:
    secretName: {{ $r.caSecret }}
    items:
      - key: {{ $r.caKey }}
        path: {{ $r.caKey }}
{{- end }}
{{- if and $m.tls $m.caSecret }}
- name: mongodb-ca
  secret:
    secretName: {{ $m.caSecret }}
    items:
      - key: {{ $m.caKey }}
        path: {{ $m.caKey }}
{{- end }}
{{- end -}}

{{- define "keda-demo.caVolumeMounts" -}}
{{- $r := include "keda-demo.rabbitmq" . | fromYaml -}}
{{- $m := include "keda-demo.mongodb" . | fromYaml -}}
{{- if and $r.tls $r.caSecret }}
- name: rabbitmq-ca
  mountPath: {{ include "keda-demo.caDir" "rabbitmq" }}
  readOnly: true
{{- end }}
{{- if and $m.tls $m.caSecret }}
- name: mongodb-ca
  mountPath: {{ include "keda-demo.caDir" "mongodb" }}
  readOnly: true
{{- end }}
{{- end -}}

{{/*
keda-demo.requireMonitoringAPI fails unless the cluster serves a prometheus-operator kind:
dict "root" $ "kind" "ServiceMonitor" "value" "app.serviceMonitor.enabled". Either capability
form counts: the kind (what Helm discovers on a live cluster) or the group/version alone (what
GitOps tools and `helm template --api-versions monitoring.coreos.com/v1` pass).
*/}}
{{- define "keda-demo.requireMonitoringAPI" -}}
{{- $caps := .root.Capabilities.APIVersions -}}
{{- if not (or ($caps.Has (printf "monitoring.coreos.com/v1/%s" .kind)) ($caps.Has "monitoring.coreos.com/v1")) -}}
{{- fail (printf "%s is true but the cluster has no monitoring.coreos.com/v1 %s API: install the prometheus-operator CRDs first (rendering offline: pass --api-versions monitoring.coreos.com/v1), or set %s=false" .value .kind .value) -}}
{{- end -}}
{{- end -}}
