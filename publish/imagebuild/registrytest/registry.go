// Package registrytest runs a real registry for tests: Debian's docker-registry (the CNCF
// distribution registry 2.8) on a free 127.0.0.1 port, with htpasswd basic auth, its config and
// storage in the test's temporary directory, stopped at cleanup.
//
// Without the docker-registry package the test is skipped, except under CI=true where it fails:
// .ci/run installs it (apt-get install docker-registry).
package registrytest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Registry is a running registry.
type Registry struct {
	// Host is 127.0.0.1:<port>, the registry part of image references.
	Host               string
	Username, Password string
}

// Binary finds the registry program: docker-registry (Debian) or registry (upstream).
func Binary() (string, error) {
	for _, n := range []string{"docker-registry", "registry"} {
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
	}
	for _, p := range []string{"/usr/bin/docker-registry", "/usr/sbin/docker-registry"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("docker-registry is not installed (apt-get install docker-registry)")
}

// Start runs a registry with one user and a random password for the life of the test.
func Start(t testing.TB) *Registry {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v; CI must install it", err)
		}
		t.Skipf("skipping: %v", err)
	}
	r := &Registry{Username: "keda", Password: randomHex(t, 12)}
	hash, err := bcrypt.GenerateFromPassword([]byte(r.Password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	htpasswd := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(htpasswd, []byte(r.Username+":"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	storage := filepath.Join(dir, "storage")
	if err := os.Mkdir(storage, 0o700); err != nil {
		t.Fatal(err)
	}

	var lastErr error
	for attempt := 0; attempt < 5; attempt++ { // a free port can be taken between probe and bind
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		r.Host = fmt.Sprintf("127.0.0.1:%d", port)
		cfg := filepath.Join(dir, fmt.Sprintf("config-%d.yml", attempt))
		if err := os.WriteFile(cfg, []byte(config(r.Host, storage, htpasswd, randomHex(t, 16))), 0o600); err != nil {
			t.Fatal(err)
		}
		if lastErr = r.start(t, bin, cfg); lastErr == nil {
			return r
		}
	}
	t.Fatalf("docker-registry did not start: %v", lastErr)
	return nil
}

func config(addr, storage, htpasswd, secret string) string {
	return fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
  secret: %s
auth:
  htpasswd:
    realm: keda-demo-test
    path: %s
`, storage, addr, secret, htpasswd)
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (r *Registry) start(t testing.TB, bin, cfg string) error {
	var logs lockedBuffer
	cmd := exec.Command(bin, "serve", cfg)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err
			return fmt.Errorf("exited (%v): %s", err, logs.String())
		default:
		}
		resp, err := http.Get("http://" + r.Host + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusUnauthorized {
				break
			}
		}
		if time.Now().After(deadline) {
			stop()
			return fmt.Errorf("no answer on %s: %s", r.Host, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("docker-registry log:\n%s", logs.String())
		}
	})
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// get does an authenticated GET of the registry API and decodes the JSON answer.
func (r *Registry) get(t testing.TB, path string, v any) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+r.Host+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(r.Username, r.Password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
	}
	return resp.StatusCode
}

// Catalog lists the repositories the registry holds.
func (r *Registry) Catalog(t testing.TB) []string {
	t.Helper()
	var c struct {
		Repositories []string `json:"repositories"`
	}
	if code := r.get(t, "/v2/_catalog", &c); code != http.StatusOK {
		t.Fatalf("GET /v2/_catalog: %d", code)
	}
	return c.Repositories
}

// Tags lists a repository's tags (none when the repository does not exist).
func (r *Registry) Tags(t testing.TB, repo string) []string {
	t.Helper()
	var l struct {
		Tags []string `json:"tags"`
	}
	repo = strings.TrimPrefix(repo, r.Host+"/")
	switch code := r.get(t, "/v2/"+repo+"/tags/list", &l); code {
	case http.StatusOK:
		return l.Tags
	case http.StatusNotFound:
		return nil
	default:
		t.Fatalf("GET tags of %s: %d", repo, code)
		return nil
	}
}
