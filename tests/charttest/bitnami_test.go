package charttest

import (
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/strvals"
)

// What only the real bitnami templates can show. Every test here needs the archives
// (requireBitnami: a skip on a developer's machine without them, a failure in CI).

// fixedPasswords make bitnami's render deterministic: with empty passwords it generates new ones
// (randAlphaNum) on every client-side render. Offline rendering requires them (lintOverlay).
var fixedPasswords = []string{
	"mongodb.auth.rootPassword=root-pw",
	"mongodb.auth.passwords={app-pw}",
	"mongodb.auth.replicaSetKey=rs-key",
	"rabbitmq.auth.password=rabbit-pw",
	"rabbitmq.auth.erlangCookie=cookie",
}

// bitnamiCases are the render cases in which at least one bitnami chart is enabled.
func bitnamiCases(t *testing.T) []renderCase {
	var out []renderCase
	for _, c := range renderCases(t) {
		vals := values(t, c.files, c.sets...)
		if enabled(vals, "mongodb") || enabled(vals, "rabbitmq") {
			out = append(out, c)
		}
	}
	require.NotEmpty(t, out)
	return out
}

// TestBitnamiSecretsAndServices: the Secret keys the app, the processor and KEDA's
// TriggerAuthentication read, and the Services and ports the programs and KEDA dial, exist in
// what the bitnami charts themselves render.
func TestBitnamiSecretsAndServices(t *testing.T) {
	requireBitnami(t)
	for _, c := range bitnamiCases(t) {
		t.Run(c.name, func(t *testing.T) {
			vals := values(t, c.files, c.sets...)
			r := mustRender(t, vals)

			secrets := map[string]map[string]bool{}
			services := map[string]doc{}
			statefulSets := map[string]doc{}
			for _, d := range r.bitnamiDocs() {
				name := str(get(d.obj, "metadata", "name"))
				switch d.obj["kind"] {
				case "Secret":
					secrets[name] = map[string]bool{}
					for _, field := range []string{"data", "stringData"} {
						m, _ := d.obj[field].(map[string]any)
						for k := range m {
							secrets[name][k] = true
						}
					}
				case "Service":
					services[name] = d
				case "StatefulSet":
					statefulSets[name] = d
				}
			}

			// Secrets: every reference to a Secret of a bitnami release name resolves in
			// bitnami's own Secret, and each enabled chart's Secret is referenced.
			referenced := map[string]bool{}
			for _, ref := range secretRefs(t, r) {
				for _, chart := range []string{"mongodb", "rabbitmq"} {
					if !enabled(vals, chart) || ref.name != bitnamiFullname(chart) {
						continue
					}
					require.Truef(t, secrets[ref.name][ref.key], "%s reads Secret %s key %s, but the bitnami %s chart renders %v", ref.where, ref.name, ref.key, chart, secrets[ref.name])
					referenced[chart+" "+ref.where] = true
				}
			}
			for _, chart := range []string{"mongodb", "rabbitmq"} {
				if !enabled(vals, chart) {
					continue
				}
				n := 0
				for k := range referenced {
					if strings.HasPrefix(k, chart+" ") {
						n++
					}
				}
				require.Positivef(t, n, "nothing reads the bitnami %s Secret %s", chart, bitnamiFullname(chart))
				if chart == "rabbitmq" {
					require.Truef(t, slices.ContainsFunc(slices.Sorted(maps.Keys(referenced)), func(k string) bool { return strings.HasPrefix(k, "rabbitmq TriggerAuthentication") }),
						"KEDA's TriggerAuthentication does not read the bitnami rabbitmq Secret: %v", slices.Sorted(maps.Keys(referenced)))
				}
			}

			// Services: each host:port the programs dial is a bitnami Service port (a replica
			// set member: a pod of the StatefulSet behind its headless Service).
			appEnv := envMap(appPod(t, r).spec.Containers[0])
			for prefix, chart := range map[string]string{"RABBITMQ_": "rabbitmq", "MONGODB_": "mongodb"} {
				if !enabled(vals, chart) {
					continue
				}
				port, err := strconv.Atoi(appEnv[prefix+"PORT"])
				require.NoError(t, err, "%sPORT", prefix)
				for _, h := range strings.Split(appEnv[prefix+"HOST"], ",") {
					host, p := h, port
					if hh, ps, err := net.SplitHostPort(h); err == nil {
						host, p = hh, atoi(t, ps)
					}
					checkDialable(t, prefix+"HOST "+h, host, p, services, statefulSets)
				}
			}
			// KEDA dials the host of its TriggerAuthentication (amqp or management port).
			if enabled(vals, "rabbitmq") {
				ta := r.one(t, "TriggerAuthentication")
				u, err := url.Parse(triggerSecretValue(t, r, ta, "host"))
				require.NoError(t, err)
				checkDialable(t, "KEDA host "+u.String(), u.Hostname(), atoi(t, u.Port()), services, statefulSets)
			}
		})
	}
}

// checkDialable: host is <service>.<ns>.svc (a bitnami Service with that port) or
// <sts>-<i>.<headless>.<ns>.svc.cluster.local (pod i of a bitnami StatefulSet whose serviceName is
// that headless Service, with the port).
func checkDialable(t *testing.T, what, host string, port int, services, statefulSets map[string]doc) {
	t.Helper()
	parts := strings.Split(host, ".")
	i := slices.Index(parts, "svc")
	require.Truef(t, i == 2 || i == 3, "%s: %s is not <service>.<namespace>.svc or <pod>.<service>.<namespace>.svc", what, host)
	require.Equalf(t, namespace, parts[i-1], "%s: not in namespace %s", what, namespace)
	svcName := parts[i-2]
	if i == 3 { // a StatefulSet pod behind its headless Service
		pod := parts[0]
		dash := strings.LastIndex(pod, "-")
		require.Positivef(t, dash, "%s: %s is not a StatefulSet pod name", what, pod)
		sts, ok := statefulSets[pod[:dash]]
		require.Truef(t, ok, "%s: no bitnami StatefulSet %s", what, pod[:dash])
		require.Equalf(t, svcName, str(get(sts.obj, "spec", "serviceName")), "%s: StatefulSet %s is governed by another Service", what, pod[:dash])
		require.Lessf(t, atoi(t, pod[dash+1:]), toInt(get(sts.obj, "spec", "replicas")), "%s: StatefulSet %s has fewer replicas", what, pod[:dash])
	}
	svc, ok := services[svcName]
	require.Truef(t, ok, "%s: the bitnami charts render no Service %s (they render %v)", what, svcName, slices.Sorted(maps.Keys(services)))
	var ports []int
	for _, p := range get(svc.obj, "spec", "ports").([]any) {
		ports = append(ports, toInt(get(p, "port")))
	}
	require.Containsf(t, ports, port, "%s: Service %s has ports %v", what, svcName, ports)
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	require.NoError(t, err)
	return n
}

func appPod(t *testing.T, r rendered) podOf {
	t.Helper()
	for _, p := range ourPods(t, r) {
		if strings.HasPrefix(p.where, "Deployment ") {
			return p
		}
	}
	require.FailNow(t, "no app Deployment")
	return podOf{}
}

// bitnamiPods are the pod templates the bitnami charts render.
func bitnamiPods(t *testing.T, r rendered) []podOf {
	t.Helper()
	return podTemplates(t, r.bitnamiDocs(), "bitnami ")
}

// TestBitnamiPodsRestricted: bitnami's pods meet what ours meet — the restricted Pod Security
// Standard (a namespace that enforces it admits their Pods), a read-only root filesystem, and a
// ServiceAccount token only where the release binds a Role (RabbitMQ's peer discovery).
func TestBitnamiPodsRestricted(t *testing.T) {
	requireBitnami(t)
	for _, c := range bitnamiCases(t) {
		t.Run(c.name, func(t *testing.T) {
			r := mustRender(t, values(t, c.files, c.sets...))
			pods := bitnamiPods(t, r)
			require.NotEmpty(t, pods)
			require.Empty(t, restrictedProblems(t, pods, boundAccounts(r)))
		})
	}
}

// TestNoDeprecatedServiceFields: no Service, ours or bitnami's, asks for what the API server
// warns about on every apply: trafficDistribution PreferClose is deprecated since Kubernetes 1.35
// (PreferSameZone is its name now). The e2e's server-side dry run fails on any warning.
func TestNoDeprecatedServiceFields(t *testing.T) {
	requireBitnami(t)
	for _, c := range bitnamiCases(t) {
		t.Run(c.name, func(t *testing.T) {
			r := mustRender(t, values(t, c.files, c.sets...))
			for _, d := range r.kind("Service") {
				require.NotEqualf(t, "PreferClose", get(d.obj, "spec", "trafficDistribution"), "Service %v (%s)", get(d.obj, "metadata", "name"), d.source)
			}
		})
	}
}

// allImagesOn turns on every bitnami feature that brings an image of its own: metrics (the
// MongoDB exporter), volumePermissions (os-shell), tls (nginx makes MongoDB's certificates) and
// externalAccess.autoDiscovery (kubectl).
var allImagesOn = []string{
	"mongodb.metrics.enabled=true", "mongodb.volumePermissions.enabled=true", "mongodb.tls.enabled=true",
	"mongodb.externalAccess.enabled=true", "mongodb.externalAccess.autoDiscovery.enabled=true",
	"mongodb.externalAccess.service.type=LoadBalancer", "mongodb.rbac.create=true", "mongodb.serviceAccount.create=true",
	"mongodb.automountServiceAccountToken=true",
	"rabbitmq.metrics.enabled=true", "rabbitmq.volumePermissions.enabled=true",
}

// TestBitnamiImages: every image bitnami renders, with every image-bearing feature on, comes
// from docker.io/bitnamilegacy (docker.io/bitnami deleted its versioned tags, bitnami/charts#35164),
// and global.security.allowInsecureImages is set (bitnami/common refuses substituted images
// without it, bitnami/charts#30850).
func TestBitnamiImages(t *testing.T) {
	requireBitnami(t)
	seen := map[string]bool{}
	for _, c := range []renderCase{
		{name: "defaults", sets: allImagesOn},
		{name: "production", files: []string{profileFile("production")}, sets: allImagesOn}, // a replica set: autoDiscovery
		{name: "dev", files: []string{profileFile("dev")}, sets: allImagesOn},
	} {
		t.Run(c.name, func(t *testing.T) {
			vals := values(t, c.files, append(slices.Clone(fixedPasswords), c.sets...)...)
			eff, err := chartutil.CoalesceValues(loadChart(t), vals)
			require.NoError(t, err)
			require.Equal(t, true, get(map[string]any(eff), "global", "security", "allowInsecureImages"), "global.security.allowInsecureImages")
			r := mustRender(t, vals)
			for _, p := range bitnamiPods(t, r) {
				for _, ctr := range append(slices.Clone(p.spec.InitContainers), p.spec.Containers...) {
					repo, _, _ := strings.Cut(ctr.Image, ":")
					require.Truef(t, strings.HasPrefix(repo, "docker.io/bitnamilegacy/"), "%s container %s runs %s, not a docker.io/bitnamilegacy image", p.where, ctr.Name, ctr.Image)
					seen[strings.TrimPrefix(repo, "docker.io/bitnamilegacy/")] = true
				}
			}
		})
	}
	// Every image the archives default to was rendered at least once, so none escaped the check.
	for _, img := range []string{"mongodb", "rabbitmq", "os-shell", "nginx", "kubectl", "mongodb-exporter"} {
		require.Truef(t, seen[img], "no bitnamilegacy/%s rendered (rendered %v): the features that use it are not on", img, slices.Sorted(maps.Keys(seen)))
	}
}

// TestBitnamiProductionValuesTakeEffect: every bitnami value the production profile sets is read
// by the bitnami templates: changing it changes what they render (or makes them fail). A name
// bitnami does not know (a typo, a key of another chart version) changes nothing and fails here.
func TestBitnamiProductionValuesTakeEffect(t *testing.T) {
	requireBitnami(t)
	raw := readFile(t, profileFile("production"))
	var profile map[string]any
	require.NoError(t, yaml.Unmarshal(raw, &profile))
	base := values(t, []string{profileFile("production")}, fixedPasswords...)
	baseline := bitnamiManifest(t, base)
	require.Equal(t, baseline, bitnamiManifest(t, base), "two renders of the same values differ: the comparison below would mean nothing")

	var leaves []string
	for _, chart := range []string{"mongodb", "rabbitmq"} {
		m, ok := profile[chart].(map[string]any)
		require.Truef(t, ok, "the production profile sets no %s values", chart)
		leaves = append(leaves, leafPaths(chart, m)...)
	}
	require.GreaterOrEqual(t, len(leaves), 10, "leaves %v", leaves)
	for _, path := range leaves {
		if strings.HasSuffix(path, ".enabled") && strings.Count(path, ".") == 1 {
			continue // the dependency's condition, read by Helm itself
		}
		t.Run(path, func(t *testing.T) {
			read, detail := bitnamiReads(t, base, path)
			require.Truef(t, read, "production profile: bitnami ignores %s (%s)", path, detail)
		})
	}
	// The check can fail: a key bitnami does not have is reported as ignored.
	for _, bogus := range []string{"rabbitmq.pdb.minAvailabel", "mongodb.replicaSetNmae"} {
		vals := values(t, []string{profileFile("production")}, append(slices.Clone(fixedPasswords), bogus+"=2")...)
		read, _ := bitnamiReads(t, vals, bogus)
		require.Falsef(t, read, "%s is no bitnami value, yet the check says it is read", bogus)
	}
}

// coupled are values our own checks require to agree with a bitnami value: changed together.
var coupled = map[string]func(v any) []string{
	"mongodb.replicaCount": func(v any) []string {
		return []string{fmt.Sprintf("global.kedaDemo.embeddedMongodb.replicaSetMembers=%v", v)}
	},
	"mongodb.replicaSetName": func(v any) []string {
		return []string{fmt.Sprintf("global.kedaDemo.embeddedMongodb.replicaSetName=%v", v)}
	},
	"mongodb.architecture": func(any) []string { return []string{"global.kedaDemo.embeddedMongodb.replicaSetMembers=0"} },
}

// bitnamiReads changes the value at path and reports whether the bitnami templates render
// something else or fail in their own templates.
func bitnamiReads(t *testing.T, vals map[string]any, path string) (bool, string) {
	t.Helper()
	baseline := bitnamiManifest(t, deepCopy(t, vals)) // the same value types as the changed copy
	changed := deepCopy(t, vals)
	parts := strings.Split(path, ".")
	parent := changed
	for _, p := range parts[:len(parts)-1] {
		next, _ := parent[p].(map[string]any)
		require.NotNilf(t, next, "%s: no map at %s", path, p)
		parent = next
	}
	last := parts[len(parts)-1]
	var nv any
	switch v := parent[last].(type) {
	case bool:
		nv = !v
	case float64:
		nv = v + 1
	case int64:
		nv = v + 1
	case int:
		nv = v + 1
	case string:
		nv = map[string]string{"replicaset": "standalone", "small": "medium", "medium": "large"}[v]
		if nv == "" {
			nv = v + "\n# changed"
			if !strings.Contains(v, "\n") {
				nv = v + "x"
			}
		}
	default:
		require.FailNow(t, fmt.Sprintf("%s: cannot change a %T", path, v))
	}
	parent[last] = nv
	if f, ok := coupled[path]; ok {
		for _, s := range f(nv) {
			require.NoError(t, strvals.ParseInto(s, changed))
		}
	}
	r, err := render(t, changed)
	if err != nil {
		for _, chart := range []string{"mongodb", "rabbitmq"} {
			if strings.Contains(err.Error(), "keda-demo/charts/"+chart+"/") {
				return true, "the bitnami templates fail: " + err.Error()
			}
		}
		require.FailNow(t, fmt.Sprintf("%s=%v: our templates refuse it (add the values they require to agree to coupled): %v", path, nv, err))
	}
	got := manifestOf(r.bitnamiDocs())
	if got != baseline {
		return true, "render changed"
	}
	return false, fmt.Sprintf("%s=%v renders the same bitnami objects", path, nv)
}

func bitnamiManifest(t *testing.T, vals map[string]any) string {
	t.Helper()
	return manifestOf(mustRender(t, vals).bitnamiDocs())
}

func manifestOf(ds []doc) string {
	var texts []string
	for _, d := range ds {
		texts = append(texts, d.text)
	}
	sort.Strings(texts)
	return strings.Join(texts, "\n---\n")
}

func leafPaths(prefix string, m map[string]any) []string {
	var out []string
	for k, v := range m {
		p := prefix + "." + k
		if sub, ok := v.(map[string]any); ok {
			out = append(out, leafPaths(p, sub)...)
			continue
		}
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

func deepCopy(t *testing.T, m map[string]any) map[string]any {
	t.Helper()
	b, err := json.Marshal(m)
	require.NoError(t, err)
	var out map[string]any
	require.NoError(t, json.Unmarshal(b, &out))
	return out
}
