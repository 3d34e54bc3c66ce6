package charttest

import (
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
)

// bitnamiSecrets are the Secrets (and keys) the bitnami charts render when they are enabled and
// no existingSecret is set — the names our pods and KEDA reference in embedded mode:
//   - mongodb 16.5.45: templates/secrets.yaml renders Secret `mongodb.secretName` =
//     common.names.fullname (= <release>-mongodb) with mongodb-root-password and, with
//     auth.usernames, mongodb-passwords (templates/_helpers.tpl "mongodb.secretName").
//   - rabbitmq 16.0.14: templates/secrets.yaml renders <release>-rabbitmq with rabbitmq-password
//     and rabbitmq-erlang-cookie (templates/_helpers.tpl "rabbitmq.secretPasswordName",
//     "rabbitmq.secretErlangName").
func bitnamiSecrets(vals map[string]any) map[string][]string {
	out := map[string][]string{}
	if enabled(vals, "mongodb") {
		out[bitnamiFullname("mongodb")] = []string{"mongodb-root-password", "mongodb-passwords"}
	}
	if enabled(vals, "rabbitmq") {
		out[bitnamiFullname("rabbitmq")] = []string{"rabbitmq-password", "rabbitmq-erlang-cookie"}
	}
	return out
}

// bitnamiServices: the Services the programs connect to in embedded mode.
func bitnamiServices(vals map[string]any) map[string]int {
	out := map[string]int{}
	if enabled(vals, "mongodb") {
		out[bitnamiFullname("mongodb")] = 27017 // standalone: templates/standalone/svc.yaml
	}
	if enabled(vals, "rabbitmq") {
		out[bitnamiFullname("rabbitmq")] = 5672 // templates/svc.yaml, service.ports.amqp
	}
	return out
}

// mongodbMembers: the stable names of bitnami's replica set members (StatefulSet pods behind the
// headless Service <release>-mongodb-headless), with the port.
func mongodbMembers(n int) []string {
	var hs []string
	for i := range n {
		hs = append(hs, fmt.Sprintf("%s-%d.%s-headless.%s.svc.cluster.local:27017", bitnamiFullname("mongodb"), i, bitnamiFullname("mongodb"), namespace))
	}
	return hs
}

func bitnamiFullname(chart string) string {
	if strings.Contains(releaseName, chart) {
		return releaseName
	}
	return releaseName + "-" + chart
}

func enabled(vals map[string]any, chart string) bool {
	v := get(vals, chart, "enabled")
	return v == nil || v == true
}

// existingSecrets: Secrets the user declares in values (external mode, pull secrets) — they
// exist before the release, so a reference to them is fine.
func existingSecrets(vals map[string]any) map[string][]string {
	out := map[string][]string{}
	addKey := func(name, key any) {
		if n := str(name); n != "" {
			out[n] = append(out[n], str(key))
		}
	}
	for _, svc := range []string{"externalRabbitmq", "externalMongodb"} {
		e := get(vals, "global", "kedaDemo", svc)
		def := map[string]string{"externalRabbitmq": "rabbitmq-password", "externalMongodb": "mongodb-password"}[svc]
		urlKey := map[string]string{"externalRabbitmq": "urlSecret", "externalMongodb": "uriSecret"}[svc]
		if get(e, "existingSecret") != nil {
			k := get(e, "existingSecretPasswordKey")
			if k == nil {
				k = def
			}
			addKey(get(e, "existingSecret"), k)
		}
		addKey(get(e, urlKey, "name"), or(get(e, urlKey, "key"), map[string]string{"externalRabbitmq": "rabbitmq-url", "externalMongodb": "mongodb-uri"}[svc]))
		addKey(get(e, "tls", "caSecret"), or(get(e, "tls", "caKey"), "ca.crt"))
	}
	if ps, ok := get(vals, "global", "kedaDemo", "imagePullSecrets").([]any); ok {
		for _, p := range ps {
			addKey(get(p, "name"), ".dockerconfigjson")
		}
	}
	return out
}

func or(v any, def string) any {
	if v == nil || v == "" {
		return def
	}
	return v
}

type secretRef struct{ where, name, key string }

func secretRefs(t *testing.T, r rendered) []secretRef {
	var refs []secretRef
	for _, p := range ourPods(t, r) {
		for _, c := range p.spec.Containers {
			for _, e := range c.Env {
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					refs = append(refs, secretRef{fmt.Sprintf("%s env %s", p.where, e.Name), e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key})
				}
			}
		}
		for _, v := range p.spec.Volumes {
			if v.Secret != nil {
				for _, it := range v.Secret.Items {
					refs = append(refs, secretRef{fmt.Sprintf("%s volume %s", p.where, v.Name), v.Secret.SecretName, it.Key})
				}
			}
		}
		for _, ps := range p.spec.ImagePullSecrets {
			refs = append(refs, secretRef{p.where + " imagePullSecrets", ps.Name, ".dockerconfigjson"})
		}
	}
	for _, d := range r.kind("TriggerAuthentication") {
		refsList, _ := get(d.obj, "spec", "secretTargetRef").([]any)
		for _, ref := range refsList {
			refs = append(refs, secretRef{fmt.Sprintf("TriggerAuthentication %v parameter %v", get(d.obj, "metadata", "name"), get(ref, "parameter")), str(get(ref, "name")), str(get(ref, "key"))})
		}
	}
	return refs
}

// checkCrossRefs: every Secret reference resolves; the queue is the same for app, processor and
// trigger; the helm test targets the app Service's real name and port; names referenced exist.
// It returns every mismatch it finds; what the rest depends on (an object, a parsable value) it
// requires at once.
func checkCrossRefs(t *testing.T, r rendered, vals map[string]any) problemList {
	t.Helper()
	var problems problemList
	known := map[string]map[string]bool{}
	addKnown := func(m map[string][]string) {
		for n, keys := range m {
			if known[n] == nil {
				known[n] = map[string]bool{}
			}
			for _, k := range keys {
				known[n][k] = true
			}
		}
	}
	for _, s := range r.kind("Secret") {
		name := str(get(s.obj, "metadata", "name"))
		var keys []string
		for _, field := range []string{"data", "stringData"} {
			if m, ok := s.obj[field].(map[string]any); ok {
				for k := range m {
					keys = append(keys, k)
				}
			}
		}
		addKnown(map[string][]string{name: keys})
	}
	if bitnamiArchivesPresent() {
		// With the archives the bitnami Secrets are in the render: the table above must match them.
		for name, keys := range bitnamiSecrets(vals) {
			for _, k := range keys {
				if !known[name][k] {
					problems.add("bitnami table says Secret %s has key %s, but the bitnami chart did not render it", name, k)
				}
			}
		}
	}
	addKnown(bitnamiSecrets(vals))
	addKnown(existingSecrets(vals))
	refs := secretRefs(t, r)
	if len(refs) == 0 {
		problems.add("no Secret references at all")
	}
	for _, ref := range refs {
		if !known[ref.name][ref.key] {
			problems.add("%s references Secret %s key %s, which neither this release, the bitnami charts nor the values provide", ref.where, ref.name, ref.key)
		}
	}

	// The queue: app publishes to it, processor reads it, KEDA watches it.
	sj := r.one(t, "ScaledJob")
	trigger := get(sj.obj, "spec", "triggers", 0)
	queue := str(get(trigger, "metadata", "queueName"))
	if queue == "" {
		problems.add("trigger has no queueName")
	}
	var app, proc podOf
	for _, p := range ourPods(t, r) {
		switch {
		case strings.HasPrefix(p.where, "Deployment "):
			app = p
		case strings.HasPrefix(p.where, "ScaledJob "):
			proc = p
		}
	}
	appEnv, procEnv := envMap(app.spec.Containers[0]), envMap(proc.spec.Containers[0])
	if appEnv["QUEUE_NAME"] != queue || procEnv["QUEUE_NAME"] != queue {
		problems.add("queue: trigger %q, app QUEUE_NAME %q, processor QUEUE_NAME %q", queue, appEnv["QUEUE_NAME"], procEnv["QUEUE_NAME"])
	}
	// Both programs reach the same broker and database the same way.
	for name, v := range appEnv {
		if strings.HasPrefix(name, "RABBITMQ_") || strings.HasPrefix(name, "MONGODB_") {
			if procEnv[name] != v {
				problems.add("%s: app %q, processor %q", name, v, procEnv[name])
			}
		}
	}
	// Embedded services: the hosts are the bitnami Services.
	svcs := bitnamiServices(vals)
	for prefix, chart := range map[string]string{"RABBITMQ_": "rabbitmq", "MONGODB_": "mongodb"} {
		if !enabled(vals, chart) {
			continue
		}
		want := fmt.Sprintf("%s.%s.svc", bitnamiFullname(chart), namespace)
		if chart == "mongodb" && get(vals, "mongodb", "architecture") == "replicaset" {
			// Every member, through the headless Service of bitnami's templates/replicaset.
			want = strings.Join(mongodbMembers(toInt(get(vals, "mongodb", "replicaCount"))), ",")
		}
		if appEnv[prefix+"HOST"] != want || appEnv[prefix+"PORT"] != strconv.Itoa(svcs[bitnamiFullname(chart)]) {
			problems.add("%sHOST/PORT = %s:%s, want the bitnami Service %s:%d", prefix, appEnv[prefix+"HOST"], appEnv[prefix+"PORT"], want, svcs[bitnamiFullname(chart)])
		}
	}
	// KEDA's host (chart-owned trigger Secret) is the broker the programs use.
	ta := r.one(t, "TriggerAuthentication")
	if n := str(get(trigger, "authenticationRef", "name")); n != str(get(ta.obj, "metadata", "name")) {
		problems.add("trigger authenticationRef %q, TriggerAuthentication is %q", n, get(ta.obj, "metadata", "name"))
	}
	if appEnv["RABBITMQ_HOST"] != "" {
		host := triggerSecretValue(t, r, ta, "host")
		u, err := url.Parse(host)
		require.NoErrorf(t, err, "KEDA host %q", host)
		if str(get(trigger, "metadata", "protocol")) == "amqp" && (u.Hostname() != appEnv["RABBITMQ_HOST"] || u.Port() != appEnv["RABBITMQ_PORT"]) {
			problems.add("KEDA host %s, programs use %s:%s", host, appEnv["RABBITMQ_HOST"], appEnv["RABBITMQ_PORT"])
		}
		if u.User != nil {
			problems.add("KEDA host %q carries credentials: they must come as separate, escaped parameters", host)
		}
		if user := triggerSecretValue(t, r, ta, "username"); user != appEnv["RABBITMQ_USERNAME"] {
			problems.add("KEDA username %q, programs use %q", user, appEnv["RABBITMQ_USERNAME"])
		}
		if v := str(get(trigger, "metadata", "vhostName")); v != appEnv["RABBITMQ_VHOST"] {
			problems.add("trigger vhostName %q, programs use %q", v, appEnv["RABBITMQ_VHOST"])
		}
	}

	// The helm test targets the app Service's real name and port.
	svc := r.one(t, "Service")
	var test podOf
	for _, p := range ourPods(t, r) {
		if strings.HasPrefix(p.where, "Pod ") {
			test = p
		}
	}
	args := test.spec.Containers[0].Args
	require.Truef(t, len(args) > 0 && args[0] == "smoke", "helm test args %q: want the smoke subcommand", args)
	flags := map[string]string{}
	for i := 1; i+1 < len(args); i += 2 {
		flags[args[i]] = args[i+1]
	}
	u, err := url.Parse(flags["--url"])
	require.NoError(t, err, "helm test --url")
	wantHost := fmt.Sprintf("%s.%s.svc", get(svc.obj, "metadata", "name"), namespace)
	svcPort := str(get(svc.obj, "spec", "ports", 0, "port"))
	if u.Hostname() != wantHost || u.Port() != svcPort {
		problems.add("helm test --url %s, app Service is %s:%s", u, wantHost, svcPort)
	}
	if get(svc.obj, "spec", "ports", 0, "targetPort") != "http" || app.spec.Containers[0].Ports[0].Name != "http" {
		problems.add("app Service targetPort must be the container's named port http")
	}
	if flags["--name-prefix"] != "helm-test-" {
		problems.add("helm test record prefix %q, want helm-test-", flags["--name-prefix"])
	}
	timeout, err := time.ParseDuration(flags["--timeout"])
	poll := toInt(get(sj.obj, "spec", "pollingInterval"))
	if err != nil || timeout < time.Duration(poll+60)*time.Second {
		problems.add("helm test --timeout %q must cover the polling interval (%ds) plus a pod start", flags["--timeout"], poll)
	}
	if test.spec.Containers[0].Image != app.spec.Containers[0].Image {
		problems.add("helm test image %s, app image %s", test.spec.Containers[0].Image, app.spec.Containers[0].Image)
	}

	// ServiceAccounts the pods use exist.
	sas := map[string]bool{"default": true}
	for _, d := range r.kind("ServiceAccount") {
		sas[str(get(d.obj, "metadata", "name"))] = true
	}
	for _, p := range []podOf{app, proc} {
		if !sas[p.spec.ServiceAccountName] {
			problems.add("%s uses ServiceAccount %q, which is not rendered", p.where, p.spec.ServiceAccountName)
		}
	}
	// A rollout: the pod keeps serving through its preStop sleep (the kubelet's sleep action: the
	// image has no shell), then gets SIGTERM and longer than SHUTDOWN_TIMEOUT to finish; the grace
	// period covers both.
	var preStop time.Duration
	if lc := app.spec.Containers[0].Lifecycle; lc != nil && lc.PreStop != nil {
		if lc.PreStop.Sleep == nil || lc.PreStop.Exec != nil {
			problems.add("%s preStop must be a sleep action, not %+v", app.where, lc.PreStop)
		} else {
			preStop = time.Duration(lc.PreStop.Sleep.Seconds) * time.Second
		}
	}
	if preStop == 0 {
		problems.add("%s has no preStop sleep: during a rollout endpoints still send it new connections after it stopped accepting", app.where)
	}
	st, err := time.ParseDuration(appEnv["SHUTDOWN_TIMEOUT"])
	if err != nil || app.spec.TerminationGracePeriodSeconds == nil || time.Duration(*app.spec.TerminationGracePeriodSeconds)*time.Second <= preStop+st {
		problems.add("terminationGracePeriodSeconds %v must exceed the preStop sleep %v plus SHUTDOWN_TIMEOUT %q", app.spec.TerminationGracePeriodSeconds, preStop, appEnv["SHUTDOWN_TIMEOUT"])
	}
	// The Job's deadline covers the work.
	wd, err := time.ParseDuration(procEnv["WORK_DURATION"])
	ads := toInt(get(sj.obj, "spec", "jobTargetRef", "activeDeadlineSeconds"))
	if err != nil || time.Duration(ads)*time.Second <= wd {
		problems.add("activeDeadlineSeconds %d must exceed WORK_DURATION %q", ads, procEnv["WORK_DURATION"])
	}
	if proc.spec.RestartPolicy != corev1.RestartPolicyNever {
		problems.add("processor restartPolicy %q, want Never", proc.spec.RestartPolicy)
	}
	return append(problems, checkEnvContract(t, app, proc)...)
}

func triggerSecretValue(t *testing.T, r rendered, ta doc, param string) string {
	t.Helper()
	refs, _ := get(ta.obj, "spec", "secretTargetRef").([]any)
	for _, ref := range refs {
		if get(ref, "parameter") != param {
			continue
		}
		for _, s := range r.kind("Secret") {
			if get(s.obj, "metadata", "name") == get(ref, "name") {
				return str(get(s.obj, "stringData", str(get(ref, "key"))))
			}
		}
		require.FailNow(t, fmt.Sprintf("TriggerAuthentication parameter %s: Secret %v not rendered", param, get(ref, "name")))
	}
	require.FailNow(t, "TriggerAuthentication has no parameter "+param)
	return ""
}

func envMap(c corev1.Container) map[string]string {
	m := map[string]string{}
	for _, e := range c.Env {
		m[e.Name] = e.Value
	}
	return m
}

func toInt(v any) int {
	switch v := v.(type) {
	case float64:
		return int(v)
	case int64:
		return int(v)
	case int:
		return v
	}
	return 0
}

var readmeVar = regexp.MustCompile("`([A-Z][A-Z0-9_]+)`")

// checkEnvContract: the programs get only variables of the configuration page's table
// (docs/configuration.md), and no value is built with $(VAR) expansion (it does not escape).
// It returns every variable that breaks this.
func checkEnvContract(t *testing.T, pods ...podOf) problemList {
	t.Helper()
	var problems problemList
	section := string(readFile(t, chartDir+"/docs/configuration.md"))
	allowed := map[string]bool{}
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) > 2 {
			for _, m := range readmeVar.FindAllStringSubmatch(cells[1], -1) {
				allowed[m[1]] = true
			}
		}
	}
	require.GreaterOrEqualf(t, len(allowed), 20, "docs/configuration.md: found only %d variables", len(allowed))
	for _, p := range pods {
		for _, c := range p.spec.Containers {
			for _, e := range c.Env {
				if !allowed[e.Name] {
					problems.add("%s sets %s, which is not in docs/configuration.md", p.where, e.Name)
				}
				if strings.Contains(e.Value, "$(") {
					problems.add("%s %s=%q uses $(VAR) expansion", p.where, e.Name, e.Value)
				}
			}
		}
	}
	return problems
}
