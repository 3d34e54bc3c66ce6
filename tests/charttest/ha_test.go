package charttest

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/connstring"
	appsv1 "k8s.io/api/apps/v1"
	policyv1 "k8s.io/api/policy/v1"

	"github.com/keda-demo/keda-demo/messaging/connenv"
	"github.com/keda-demo/keda-demo/messaging/envread"
)

// programEnv is a pod's container env as the program sees it: Secret references become
// placeholders naming the Secret and key.
func programEnv(p podOf) map[string]string {
	env := map[string]string{}
	for _, e := range p.spec.Containers[0].Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			env[e.Name] = "secret-" + e.ValueFrom.SecretKeyRef.Name + "-" + e.ValueFrom.SecretKeyRef.Key
		default:
			env[e.Name] = e.Value
		}
	}
	return env
}

// connections renders a case and reads, with the programs' own code (connenv), where the app and
// the processor connect, and where KEDA does (its TriggerAuthentication host).
func connections(t *testing.T, vals map[string]any) (mongoURIs, brokerURLs []string, kedaHost string) {
	t.Helper()
	r := mustRender(t, vals)
	for _, p := range ourPods(t, r) {
		if strings.HasPrefix(p.where, "Pod ") {
			continue // the helm test talks HTTP only
		}
		reader := envread.NewReader(envread.Map(programEnv(p)))
		m, b := connenv.Mongo(reader), connenv.Broker(reader)
		require.NoError(t, reader.Err(), p.where)
		mongoURIs = append(mongoURIs, m.URI)
		brokerURLs = append(brokerURLs, b.URL)
	}
	require.Len(t, mongoURIs, 2, "want the app and the processor")
	return mongoURIs, brokerURLs, triggerSecretValue(t, r, r.one(t, "TriggerAuthentication"), "host")
}

// TestProductionConnectsToReplicatedServices: in the production profile the app and the
// processor reach MongoDB as the replica set (its name and all three members, majority writes)
// and RabbitMQ, like KEDA, through the cluster's Service; the defaults keep one MongoDB host.
// The bitnami objects themselves (StatefulSets, PDBs, rabbitmq.conf) render only with the
// bitnami archives, so their values are checked below.
func TestProductionConnectsToReplicatedServices(t *testing.T) {
	rabbitSvc := bitnamiFullname("rabbitmq") + "." + namespace + ".svc:5672"
	cases := []struct {
		name       string
		files      []string
		hosts      []string
		replicaSet string
	}{
		{"defaults", nil, []string{bitnamiFullname("mongodb") + "." + namespace + ".svc:27017"}, ""},
		{"ci/production", []string{profileFile("production")}, mongodbMembers(3), "rs0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			uris, urls, kedaHost := connections(t, values(t, c.files))
			var problems problemList
			for _, uri := range uris {
				cs, err := connstring.ParseAndValidate(uri)
				require.NoError(t, err, uri)
				if !slices.Equal(cs.Hosts, c.hosts) || cs.ReplicaSet != c.replicaSet {
					problems.add("MongoDB URI %s: hosts %v replicaSet %q, want %v %q", uri, cs.Hosts, cs.ReplicaSet, c.hosts, c.replicaSet)
				}
				if cs.WString != "majority" {
					problems.add("MongoDB URI %s: write concern w=%q, want majority", uri, cs.WString)
				}
			}
			for _, u := range urls {
				if !strings.Contains(u, "@"+rabbitSvc+"/") {
					problems.add("broker URL %s does not dial the Service %s", u, rabbitSvc)
				}
			}
			require.Empty(t, problems)
			require.Equal(t, "amqp://"+rabbitSvc+"/", kedaHost, "KEDA's host: want the Service")
		})
	}

	// The bitnami side of the profile, as values (the objects need the archives).
	v := values(t, []string{profileFile("production")})
	var problems problemList
	want := map[string]any{
		"rabbitmq.replicaCount": float64(3), "rabbitmq.pdb.create": true, "rabbitmq.pdb.minAvailable": float64(2),
		"rabbitmq.clustering.enabled": true,
		"mongodb.architecture":        "replicaset", "mongodb.replicaCount": float64(3), "mongodb.arbiter.enabled": false,
		"mongodb.replicaSetName": "rs0", "mongodb.pdb.create": true, "mongodb.pdb.minAvailable": float64(2),
	}
	for key, w := range want {
		var path []any
		for _, p := range strings.Split(key, ".") {
			path = append(path, p)
		}
		if got := get(v, path...); fmt.Sprint(got) != fmt.Sprint(w) {
			problems.add("production %s = %v, want %v", key, got, w)
		}
	}
	conf := str(get(v, "rabbitmq", "extraConfiguration"))
	for _, line := range []string{
		"quorum_queue.continuous_membership_reconciliation.enabled = true",
		"quorum_queue.continuous_membership_reconciliation.target_group_size = 3",
		"quorum_queue.continuous_membership_reconciliation.auto_remove = false",
	} {
		if !slices.Contains(strings.Split(conf, "\n"), line) {
			problems.add("production rabbitmq.extraConfiguration lacks the line %q:\n%s", line, conf)
		}
	}
	require.Empty(t, problems)
}

// TestReplicaSetKeyOffline: offline, a MongoDB replica set needs its key given (bitnami would
// generate a new one on every render, and the members would stop trusting each other).
func TestReplicaSetKeyOffline(t *testing.T) {
	var sets []string
	for _, s := range lintOverlay {
		if !strings.HasPrefix(s, "mongodb.auth.replicaSetKey=") {
			sets = append(sets, s)
		}
	}
	_, err := render(t, values(t, []string{profileFile("production")}, sets...))
	require.ErrorContains(t, err, "mongodb.auth.replicaSetKey", "production offline without a replica set key")
	mustRender(t, values(t, []string{profileFile("production")}, lintOverlay...))
	mustRender(t, values(t, nil, sets...)) // standalone needs none
}

// TestProductionBitnamiObjects: with the bitnami archives, the production render has
// the objects the profile promises: 3-replica StatefulSets for MongoDB and RabbitMQ, their PDBs
// (minAvailable 2), the headless Service the MongoDB members are named by, and the broker
// configuration with continuous membership reconciliation. Without the archives it skips (fails under CI=true).
func TestProductionBitnamiObjects(t *testing.T) {
	requireBitnami(t)
	r := mustRender(t, values(t, []string{profileFile("production")}))
	byName := func(kind, name string) doc {
		t.Helper()
		for _, d := range r.kind(kind) {
			if str(get(d.obj, "metadata", "name")) == name {
				return d
			}
		}
		require.FailNow(t, fmt.Sprintf("no %s %s in the production render", kind, name))
		return doc{}
	}
	byName("Service", bitnamiFullname("mongodb")+"-headless")
	var problems problemList
	for _, chart := range []string{"mongodb", "rabbitmq"} {
		var sts appsv1.StatefulSet
		require.NoError(t, decodeStrict(byName("StatefulSet", bitnamiFullname(chart)), &sts), "StatefulSet "+bitnamiFullname(chart))
		if sts.Spec.Replicas == nil || *sts.Spec.Replicas != 3 {
			problems.add("StatefulSet %s replicas %v, want 3", sts.Name, sts.Spec.Replicas)
		}
		var pdb policyv1.PodDisruptionBudget
		require.NoError(t, decodeStrict(byName("PodDisruptionBudget", bitnamiFullname(chart)), &pdb), "PodDisruptionBudget "+bitnamiFullname(chart))
		if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 2 {
			problems.add("PDB %s minAvailable %v, want 2", pdb.Name, pdb.Spec.MinAvailable)
		}
	}
	// rabbitmq.conf is in a ConfigMap or a Secret, depending on the bitnami version.
	var conf string
	for _, kind := range []string{"ConfigMap", "Secret"} {
		for _, d := range r.kind(kind) {
			for _, field := range []string{"data", "stringData"} {
				v := str(get(d.obj, field, "rabbitmq.conf"))
				if b, err := base64.StdEncoding.DecodeString(v); err == nil && kind == "Secret" && field == "data" {
					v = string(b)
				}
				conf += v
			}
		}
	}
	for _, line := range []string{
		"quorum_queue.continuous_membership_reconciliation.enabled = true",
		"quorum_queue.continuous_membership_reconciliation.target_group_size = 3",
	} {
		if !strings.Contains(conf, line) {
			problems.add("the rendered rabbitmq.conf lacks %q", line)
		}
	}
	require.Empty(t, problems)
}
