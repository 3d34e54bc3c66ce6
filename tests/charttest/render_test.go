package charttest

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
)

type renderCase struct {
	name  string
	files []string
	sets  []string
}

// renderCases: the defaults, every ci/ profile, and the other modes the chart supports.
func renderCases(t *testing.T) []renderCase {
	cases := []renderCase{{name: "defaults"}}
	for _, p := range profiles(t) {
		cases = append(cases, renderCase{name: "ci/" + p, files: []string{profileFile(p)}})
	}
	cases = append(cases,
		renderCase{name: "production+external", files: []string{profileFile("production"), profileFile("external")}},
		renderCase{name: "external URL/URI secrets", sets: []string{
			"mongodb.enabled=false", "rabbitmq.enabled=false",
			"global.kedaDemo.externalRabbitmq.urlSecret.name=broker-url",
			"global.kedaDemo.externalMongodb.uriSecret.name=db-uri",
		}},
		renderCase{name: "http trigger, ingress, servicemonitor, pull secret", sets: []string{
			"processor.keda.trigger.protocol=http", "processor.keda.trigger.mode=MessageRate",
			"processor.keda.scalingStrategy.strategy=default",
			"app.ingress.enabled=true", "app.serviceMonitor.enabled=true",
			"global.kedaDemo.registryCredentials.create=true", "global.kedaDemo.registryCredentials.registry=ghcr.io",
			"global.kedaDemo.registryCredentials.username=bot", "global.kedaDemo.registryCredentials.password=t0k3n",
			"global.kedaDemo.imagePullSecrets[0].name=other-pull",
		}},
	)
	return cases
}

// TestRender renders every case with the SDK and runs every check on the result: strict decoding
// into k8s.io/api types, KEDA CRD validation, the restricted Pod Security Standard, and the
// cross-references between objects.
func TestRender(t *testing.T) {
	if bitnamiArchivesPresent() {
		t.Log("bitnami archives found: rendering with them")
	} else {
		t.Log("bitnami archives absent: rendering our own templates (TestBitnami* check the bitnami side)")
	}
	for _, c := range renderCases(t) {
		t.Run(c.name, func(t *testing.T) {
			vals := values(t, c.files, c.sets...)
			r := mustRender(t, vals)
			var problems problemList
			for _, kind := range []string{"Deployment", "Service", "ScaledJob", "TriggerAuthentication", "Pod"} {
				if len(r.kind(kind)) == 0 {
					problems.add("no %s rendered", kind)
				}
			}
			problems = append(problems, checkObjects(t, r)...)
			problems = append(problems, checkRestricted(t, r)...)
			problems = append(problems, checkCrossRefs(t, r, vals)...)
			if !strings.Contains(r.notes, "helm test") || !strings.Contains(r.notes, "/send") {
				problems.add("NOTES.txt lacks the how-to:\n%s", r.notes)
			}
			require.Empty(t, problems)
		})
	}
}

// TestDefaults pins the ScaledJob defaults the chart relies on: the accurate scaling strategy
// (kedacore/keda#6571), a gradual rollout, one Job per message, and no excludeUnacknowledged
// with amqp; plus the default images and the app's own MongoDB user.
func TestDefaults(t *testing.T) {
	r := mustRender(t, values(t, nil))
	sj := r.one(t, "ScaledJob").obj
	want := map[string]any{
		"spec.scalingStrategy.strategy":                 "accurate", // amqp counts ready only; processor acks early
		"spec.rollout.strategy":                         "gradual",  // helm upgrade keeps running Jobs
		"spec.jobTargetRef.template.spec.restartPolicy": "Never",
		"spec.triggers.0.type":                          "rabbitmq",
		"spec.triggers.0.metadata.protocol":             "amqp",
		"spec.triggers.0.metadata.mode":                 "QueueLength",
		"spec.triggers.0.metadata.value":                "1",
		"spec.triggers.0.metadata.queueName":            "keda-demo",
		"spec.triggers.0.metadata.vhostName":            "/",
		"spec.pollingInterval":                          float64(1),
		"spec.maxReplicaCount":                          float64(10),
		"spec.successfulJobsHistoryLimit":               float64(3),
		"spec.failedJobsHistoryLimit":                   float64(5),
		"spec.jobTargetRef.activeDeadlineSeconds":       float64(1800),
		"spec.jobTargetRef.backoffLimit":                float64(2),
	}
	var problems problemList
	for path, w := range want {
		var p []any
		for _, s := range strings.Split(path, ".") {
			if s == "0" {
				p = append(p, 0)
			} else {
				p = append(p, s)
			}
		}
		if got := get(sj, p...); got != w {
			problems.add("ScaledJob %s = %v, want %v", path, got, w)
		}
	}
	require.Empty(t, problems)
	_, ok := get(sj, "spec", "triggers", 0, "metadata", "excludeUnacknowledged").(string)
	require.False(t, ok, "excludeUnacknowledged is an error with amqp since KEDA v2.18")
	dep := r.one(t, "Deployment").obj
	require.Equal(t, "keda-demo-app:0.1.0", get(dep, "spec", "template", "spec", "containers", 0, "image"), "app image (the tag defaults to appVersion)")
	require.Equal(t, "keda-demo-processor:0.1.0", get(sj, "spec", "jobTargetRef", "template", "spec", "containers", 0, "image"), "processor image")
	pdb := r.one(t, "PodDisruptionBudget").obj
	require.Equal(t, float64(1), get(pdb, "spec", "maxUnavailable"), "PDB maxUnavailable")
	// App's own MongoDB user, not root.
	env := map[string]any{}
	for _, e := range get(dep, "spec", "template", "spec", "containers", 0, "env").([]any) {
		env[str(get(e, "name"))] = e
	}
	require.Truef(t, str(get(env["MONGODB_USERNAME"], "value")) == "keda_demo" && str(get(env["MONGODB_PASSWORD"], "valueFrom", "secretKeyRef", "key")) == "mongodb-passwords",
		"the app must use its own MongoDB user keda_demo (key mongodb-passwords), got %v / %v", env["MONGODB_USERNAME"], env["MONGODB_PASSWORD"])
}

// TestImageValues: the --set keys `go tool task images` prints (global.kedaDemo.imageRegistry,
// <program>.image.tag and .digest) reach both pods and the helm test; global.imageRegistry (read
// by bitnami) does not touch our images.
func TestImageValues(t *testing.T) {
	r := mustRender(t, values(t, nil,
		"global.kedaDemo.imageRegistry=registry.example:5000/team",
		"app.image.tag=abc123", "processor.image.tag=abc123",
		"processor.image.digest=sha256:"+strings.Repeat("a", 64),
		"global.imageRegistry=mirror.example",
	))
	dep := r.one(t, "Deployment").obj
	sj := r.one(t, "ScaledJob").obj
	test := r.one(t, "Pod").obj
	require.Equal(t, "registry.example:5000/team/keda-demo-app:abc123", get(dep, "spec", "template", "spec", "containers", 0, "image"), "app image")
	require.Equal(t, "registry.example:5000/team/keda-demo-app:abc123", get(test, "spec", "containers", 0, "image"), "helm test image")
	require.Equal(t, "registry.example:5000/team/keda-demo-processor:abc123@sha256:"+strings.Repeat("a", 64),
		get(sj, "spec", "jobTargetRef", "template", "spec", "containers", 0, "image"), "processor image")
}

// TestPasswordsNeverInPlainValues: a password with special characters (the tutorial's P@ssw0rd)
// never appears in an env value or a ConfigMap — only in Secrets.
func TestPasswordsNeverInPlainValues(t *testing.T) {
	r := mustRender(t, values(t, nil, "rabbitmq.auth.password=P@ssw0rd", "mongodb.auth.passwords={P@ssw0rd}", "mongodb.auth.rootPassword=P@ssw0rd"))
	var problems problemList
	for _, d := range r.docs {
		if d.obj["kind"] == "Secret" {
			continue
		}
		if strings.Contains(d.text, "P@ssw0rd") {
			problems.add("%v %v contains the password", d.obj["kind"], get(d.obj, "metadata", "name"))
		}
	}
	require.Empty(t, problems)
}

func TestRegistryCredentialsSecret(t *testing.T) {
	r := mustRender(t, values(t, nil, "global.kedaDemo.registryCredentials.create=true",
		"global.kedaDemo.registryCredentials.registry=ghcr.io", "global.kedaDemo.registryCredentials.username=bot",
		"global.kedaDemo.registryCredentials.password=p@ss"))
	var found bool
	for _, s := range r.kind("Secret") {
		if s.obj["type"] != "kubernetes.io/dockerconfigjson" {
			continue
		}
		found = true
		raw, err := base64.StdEncoding.DecodeString(str(get(s.obj, "data", ".dockerconfigjson")))
		require.NoError(t, err, ".dockerconfigjson")
		var cfg struct {
			Auths map[string]struct{ Username, Password, Auth string }
		}
		require.NoError(t, json.Unmarshal(raw, &cfg), "dockerconfigjson")
		a := cfg.Auths["ghcr.io"]
		auth, _ := base64.StdEncoding.DecodeString(a.Auth)
		require.Truef(t, a.Username == "bot" && a.Password == "p@ss" && string(auth) == "bot:p@ss",
			"dockerconfigjson %s: want ghcr.io with username bot, password p@ss and auth bot:p@ss", raw)
	}
	require.True(t, found, "no kubernetes.io/dockerconfigjson Secret")
}

// TestLint: pkg/lint (what `helm lint` runs) finds no error for the defaults and every profile.
// helm lint knows no keda.sh API, so lint renders offline (lintOverlay), as `task lint` does.
func TestLint(t *testing.T) {
	cases := []renderCase{{name: "defaults"}}
	for _, p := range profiles(t) {
		cases = append(cases, renderCase{name: "ci/" + p, files: []string{profileFile(p)}})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			vals := values(t, c.files, lintOverlay...)
			l := lint.AllWithKubeVersion(chartDir, vals, namespace, kubeVersion)
			var problems problemList
			for _, m := range l.Messages {
				if m.Severity >= support.ErrorSev {
					problems.add("lint: %s", m)
				} else {
					t.Logf("lint: %s", m)
				}
			}
			require.Empty(t, problems)
		})
	}
}

// TestGlobalPassthrough: global belongs to every chart of the release (bitnami reads it too), so
// unknown keys there must not fail any schema (helm/helm#10392).
func TestGlobalPassthrough(t *testing.T) {
	mustRender(t, values(t, nil, "global.foo=1", "global.imageRegistry=mirror.example", "global.storageClass=fast"))
	mustRender(t, values(t, nil, "mongodb.someBitnamiKey=1", "rabbitmq.anotherKey=x"))
}

// TestKedaCheck: without the keda.sh/v1alpha1 API the install fails at once and says how to
// install KEDA; renderOffline skips the check.
func TestKedaCheck(t *testing.T) {
	_, err := renderWith(t, values(t, nil), renderOpts{apiVersions: chartutil.VersionSet{}})
	require.Error(t, err, "want the install-KEDA-first error")
	require.Emptyf(t, unnamed(err, "keda.sh/v1alpha1", "helm install keda kedacore/keda", "renderOffline"), "want the install-KEDA-first error, got:\n%v", err)
	r, err := renderWith(t, values(t, nil, lintOverlay...), renderOpts{apiVersions: chartutil.VersionSet{}})
	require.NoError(t, err, "renderOffline with explicit passwords")
	require.Equal(t, 1, len(r.kind("ScaledJob")), "renderOffline must still render the ScaledJob")
}
