package charttest

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/connstring"

	"github.com/keda-demo/keda-demo/messaging/connenv"
	"github.com/keda-demo/keda-demo/messaging/envconfig"
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
		reader := envconfig.NewReader(envconfig.Map(programEnv(p)))
		m, b := connenv.Mongo(reader), connenv.Broker(reader)
		if err := reader.Err(); err != nil {
			t.Fatalf("%s: %v", p.where, err)
		}
		mongoURIs = append(mongoURIs, m.URI)
		brokerURLs = append(brokerURLs, b.URL)
	}
	if len(mongoURIs) != 2 {
		t.Fatalf("want the app and the processor, got %d programs", len(mongoURIs))
	}
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
			for _, uri := range uris {
				cs, err := connstring.ParseAndValidate(uri)
				if err != nil {
					t.Fatalf("%s: %v", uri, err)
				}
				if !slices.Equal(cs.Hosts, c.hosts) || cs.ReplicaSet != c.replicaSet {
					t.Errorf("MongoDB URI %s: hosts %v replicaSet %q, want %v %q", uri, cs.Hosts, cs.ReplicaSet, c.hosts, c.replicaSet)
				}
				if cs.WString != "majority" {
					t.Errorf("MongoDB URI %s: write concern w=%q, want majority", uri, cs.WString)
				}
			}
			for _, u := range urls {
				if !strings.Contains(u, "@"+rabbitSvc+"/") {
					t.Errorf("broker URL %s does not dial the Service %s", u, rabbitSvc)
				}
			}
			if kedaHost != "amqp://"+rabbitSvc+"/" {
				t.Errorf("KEDA's host %q, want the Service amqp://%s/", kedaHost, rabbitSvc)
			}
		})
	}

	// The bitnami side of the profile, as values (the objects need the archives).
	v := values(t, []string{profileFile("production")})
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
			t.Errorf("production %s = %v, want %v", key, got, w)
		}
	}
	conf := str(get(v, "rabbitmq", "extraConfiguration"))
	for _, line := range []string{
		"quorum_queue.continuous_membership_reconciliation.enabled = true",
		"quorum_queue.continuous_membership_reconciliation.target_group_size = 3",
		"quorum_queue.continuous_membership_reconciliation.auto_remove = false",
	} {
		if !slices.Contains(strings.Split(conf, "\n"), line) {
			t.Errorf("production rabbitmq.extraConfiguration lacks the line %q:\n%s", line, conf)
		}
	}
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
	if err == nil || !strings.Contains(err.Error(), "mongodb.auth.replicaSetKey") {
		t.Fatalf("production offline without a replica set key: %v, want an error naming mongodb.auth.replicaSetKey", err)
	}
	mustRender(t, values(t, []string{profileFile("production")}, lintOverlay...))
	mustRender(t, values(t, nil, sets...)) // standalone needs none
}
