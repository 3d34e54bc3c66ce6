{{/*
Every check of the umbrella's values that a JSON schema cannot express, in one place: KEDA is
installed, one mode per service (bitnami subchart or your own), the Secrets the pods and KEDA
reference exist in that mode, and the bitnami values the subcharts depend on keep their fixed
names. Passwords never go into env values or ConfigMaps: the bitnami charts keep theirs in
<release>-mongodb / <release>-rabbitmq (generated once, kept on upgrade through `lookup`);
external services bring existing Secrets.
Renders nothing; included once, from NOTES.txt (rendered by every install, upgrade, template
and lint), as the bitnami charts include their validateValues. Takes $.
*/}}
{{- define "keda-demo.validateValues" -}}
{{- $k := .Values.global.kedaDemo }}
{{- $r := include "keda-demo.rabbitmq" . | fromYaml }}
{{- $m := include "keda-demo.mongodb" . | fromYaml }}

{{- /* Install KEDA first: without its CRDs the install fails half-way with "no matches for kind ScaledJob". */ -}}
{{- if and (not .Values.renderOffline) (not (.Capabilities.APIVersions.Has "keda.sh/v1alpha1")) }}
{{- fail "\n\nkeda-demo needs KEDA: this cluster has no keda.sh/v1alpha1 API (ScaledJob, TriggerAuthentication).\nInstall KEDA first:\n  helm repo add kedacore https://kedacore.github.io/charts\n  helm install keda kedacore/keda --namespace keda --create-namespace --version 2.21.0\nthen install keda-demo again. Rendering offline for GitOps (helm template without a cluster)? Set renderOffline=true." }}
{{- end }}

{{- /* One mode per service: the bitnami subchart, or your own service. */ -}}
{{- if and .Values.mongodb.enabled $m.external }}
{{- fail "mongodb.enabled=true but global.kedaDemo.externalMongodb is set too: set mongodb.enabled=false to use your own MongoDB, or clear global.kedaDemo.externalMongodb.host/uriSecret.name" }}
{{- end }}
{{- if and (not .Values.mongodb.enabled) (not $m.external) }}
{{- fail "mongodb.enabled=false needs your own MongoDB: set global.kedaDemo.externalMongodb.host (or global.kedaDemo.externalMongodb.uriSecret.name)" }}
{{- end }}
{{- if and .Values.rabbitmq.enabled $r.external }}
{{- fail "rabbitmq.enabled=true but global.kedaDemo.externalRabbitmq is set too: set rabbitmq.enabled=false to use your own RabbitMQ, or clear global.kedaDemo.externalRabbitmq.host/urlSecret.name" }}
{{- end }}
{{- if and (not .Values.rabbitmq.enabled) (not $r.external) }}
{{- fail "rabbitmq.enabled=false needs your own RabbitMQ: set global.kedaDemo.externalRabbitmq.host (or global.kedaDemo.externalRabbitmq.urlSecret.name)" }}
{{- end }}

{{- /* External services: the password always comes from an existing Secret. */ -}}
{{- $er := $k.externalRabbitmq }}
{{- if and $r.external (not $er.urlSecret.name) }}
{{- if not $er.username }}{{ fail "global.kedaDemo.externalRabbitmq.username is required with global.kedaDemo.externalRabbitmq.host" }}{{ end }}
{{- if not $er.existingSecret }}{{ fail "global.kedaDemo.externalRabbitmq.existingSecret is required with global.kedaDemo.externalRabbitmq.host: the Secret that holds the password (key global.kedaDemo.externalRabbitmq.existingSecretPasswordKey)" }}{{ end }}
{{- end }}
{{- $em := $k.externalMongodb }}
{{- if and $m.external (not $em.uriSecret.name) $em.username (not $em.existingSecret) }}
{{- fail "global.kedaDemo.externalMongodb.existingSecret is required with global.kedaDemo.externalMongodb.username: the Secret that holds the password (key global.kedaDemo.externalMongodb.existingSecretPasswordKey)" }}
{{- end }}

{{- /* Embedded services: the subcharts reference bitnami's Secrets and users by their fixed names. */ -}}
{{- if .Values.mongodb.enabled }}
{{- $a := .Values.mongodb.auth | default dict }}
{{- if or .Values.mongodb.nameOverride .Values.mongodb.fullnameOverride }}{{ fail "mongodb.nameOverride/mongodb.fullnameOverride are not supported: the app and processor find MongoDB as <release>-mongodb" }}{{ end }}
{{- if $a.existingSecret }}{{ fail "mongodb.auth.existingSecret is not supported: the app and processor read the password from <release>-mongodb; set mongodb.auth.rootPassword and mongodb.auth.passwords instead" }}{{ end }}
{{- if eq (toString (dig "enabled" true $a)) "false" }}{{ fail "mongodb.auth.enabled=false is not supported: the app uses its own MongoDB user" }}{{ end }}
{{- if ne (toJson $a.usernames) (printf "[%q]" (include "keda-demo.embedded.mongodbUser" .)) }}{{ fail (printf "mongodb.auth.usernames must stay [%s]: the app and processor connect as that user" (include "keda-demo.embedded.mongodbUser" .)) }}{{ end }}
{{- if ne (toJson $a.databases) (printf "[%q]" (include "keda-demo.embedded.mongodbDatabase" .)) }}{{ fail (printf "mongodb.auth.databases must stay [%s]: the app and processor use that database" (include "keda-demo.embedded.mongodbDatabase" .)) }}{{ end }}
{{- $rs := $k.embeddedMongodb }}
{{- $replicaset := eq (toString .Values.mongodb.architecture) "replicaset" }}
{{- /* The subcharts cannot read mongodb.*, so the members they connect to are repeated under global. */ -}}
{{- if $replicaset }}
{{- if ne (int $rs.replicaSetMembers) (int .Values.mongodb.replicaCount) }}{{ fail (printf "mongodb.architecture=replicaset with mongodb.replicaCount=%v: set global.kedaDemo.embeddedMongodb.replicaSetMembers=%v too (the app and processor connect to every member)" .Values.mongodb.replicaCount .Values.mongodb.replicaCount) }}{{ end }}
{{- if ne (toString $rs.replicaSetName) (toString .Values.mongodb.replicaSetName) }}{{ fail (printf "global.kedaDemo.embeddedMongodb.replicaSetName %q must equal mongodb.replicaSetName %q" $rs.replicaSetName .Values.mongodb.replicaSetName) }}{{ end }}
{{- else if $rs.replicaSetMembers }}
{{- fail "global.kedaDemo.embeddedMongodb.replicaSetMembers is set but mongodb.architecture is not replicaset: set both, or neither" }}
{{- end }}
{{- if .Values.renderOffline }}
{{- if not $a.rootPassword }}{{ fail "renderOffline=true: set mongodb.auth.rootPassword (offline, bitnami would generate a new password on every render)" }}{{ end }}
{{- if not $a.passwords }}{{ fail "renderOffline=true: set mongodb.auth.passwords (offline, bitnami would generate a new password on every render)" }}{{ end }}
{{- if and $replicaset (not $a.replicaSetKey) }}{{ fail "renderOffline=true: set mongodb.auth.replicaSetKey (offline, bitnami would generate a new key on every render and the replica set members would stop trusting each other)" }}{{ end }}
{{- end }}
{{- end }}
{{- if .Values.rabbitmq.enabled }}
{{- $a := .Values.rabbitmq.auth | default dict }}
{{- if or .Values.rabbitmq.nameOverride .Values.rabbitmq.fullnameOverride }}{{ fail "rabbitmq.nameOverride/rabbitmq.fullnameOverride are not supported: the app, processor and KEDA find RabbitMQ as <release>-rabbitmq" }}{{ end }}
{{- if $a.existingPasswordSecret }}{{ fail "rabbitmq.auth.existingPasswordSecret is not supported: the app, processor and KEDA read the password from <release>-rabbitmq; set rabbitmq.auth.password instead" }}{{ end }}
{{- if ne (toString $a.username) (include "keda-demo.embedded.rabbitmqUser" .) }}{{ fail (printf "rabbitmq.auth.username must stay %s: the app, processor and KEDA connect as that user" (include "keda-demo.embedded.rabbitmqUser" .)) }}{{ end }}
{{- if .Values.renderOffline }}
{{- if not $a.password }}{{ fail "renderOffline=true: set rabbitmq.auth.password (offline, bitnami would generate a new password on every render)" }}{{ end }}
{{- if not $a.erlangCookie }}{{ fail "renderOffline=true: set rabbitmq.auth.erlangCookie (offline, bitnami would generate a new cookie on every render)" }}{{ end }}
{{- end }}
{{- end }}

{{- $app := .Values.app }}
{{- /* The live page's values were app.dashboard.* (next to app.grafanaDashboard.*); the schema
accepts the old key only so that this can name the new one. */ -}}
{{- if hasKey $app "dashboard" }}
{{- fail "app.dashboard was renamed app.livePage: move its keys there (app.livePage.jobs.enabled, app.livePage.maxClients, app.livePage.heartbeat)" }}
{{- end }}

{{- $proc := .Values.processor }}
{{- /* The Job's deadline was processor.workDurationSeconds + processor.job.activeDeadlineMarginSeconds;
it is now processor.job.activeDeadlineSeconds. The schema accepts the old key only so that this can
name the new one. */ -}}
{{- if hasKey $proc.job "activeDeadlineMarginSeconds" }}
{{- fail "processor.job.activeDeadlineMarginSeconds was replaced by processor.job.activeDeadlineSeconds, the Job's whole deadline (default 1800): the processor now ends its own run within processor.workDurationSeconds + 60 s (RUN_TIMEOUT), so the Job's deadline only has to outlast the wait for its pod to start. Remove the old key, and set processor.job.activeDeadlineSeconds if 1800 does not suit" }}
{{- end }}
{{- /* The processor ends its own run by RUN_TIMEOUT = WORK_DURATION + 60 s (processor/internal/config,
RunMargin; the chart leaves RUN_TIMEOUT at that default). A Job deadline at or below that would cut
runs that are doing nothing wrong. */ -}}
{{- $runBound := add (int $proc.workDurationSeconds) 60 }}
{{- if le (int $proc.job.activeDeadlineSeconds) $runBound }}
{{- fail (printf "processor.job.activeDeadlineSeconds=%d must exceed processor.workDurationSeconds + 60 = %d: the processor ends its own run by then (RUN_TIMEOUT = WORK_DURATION + 60s), and the Job's deadline also counts the wait for its pod to start (minutes while a cluster autoscaler adds a node; the default is 1800)" (int $proc.job.activeDeadlineSeconds) $runBound) }}
{{- end }}

{{- /* The Jobs view's Role must not land on the namespace's shared "default" account. */ -}}
{{- if and $app.livePage.jobs.enabled (not $app.serviceAccount.create) (not $app.serviceAccount.name) }}
{{- fail "app.livePage.jobs.enabled=true binds a Role (read Jobs and pods) to the app's ServiceAccount, and with app.serviceAccount.create=false and no app.serviceAccount.name that is the namespace's \"default\" account, which every other pod there uses too: set app.serviceAccount.name to an account of the app's own, set app.serviceAccount.create=true, or set app.livePage.jobs.enabled=false" }}
{{- end }}

{{- /* commonLabels add to the chart's labels, never replace them: the selectors use two of them. */ -}}
{{- range $key, $_ := $k.commonLabels }}
{{- /* A label key: an optional DNS-subdomain prefix and "/", then a name of at most 63 characters.
(Here, not in the schema: Helm's schema errors misplace a propertyNames failure.) */ -}}
{{- $name := regexReplaceAll "^.*/" $key "" }}
{{- $prefixSlash := sub (len $key) (len $name) }}
{{- if or (not (regexMatch "^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$" $key)) (gt (len $name) 63) (gt $prefixSlash 254) }}
{{- fail (printf "global.kedaDemo.commonLabels: %q is not a label key (an optional DNS subdomain and /, then a name of letters, digits, '-', '_' or '.', at most 63 characters)" $key) }}
{{- end }}
{{- if has $key (list "helm.sh/chart" "app.kubernetes.io/name" "app.kubernetes.io/instance" "app.kubernetes.io/version" "app.kubernetes.io/managed-by" "app.kubernetes.io/part-of" "app.kubernetes.io/component") }}
{{- fail (printf "global.kedaDemo.commonLabels sets %s, which the chart sets itself on every object: choose another key" $key) }}
{{- end }}
{{- end }}

{{- with $k.registryCredentials }}
{{- if and .create (not (and .registry .username .password)) }}
{{- fail "global.kedaDemo.registryCredentials.create=true needs global.kedaDemo.registryCredentials.registry, .username and .password" }}
{{- end }}
{{- end }}
{{- end -}}
