// Command chartpush publishes the keda-demo chart: it packages the repository root as
// `helm package` does (same loader, .helmignore, dependency check and archive writer) and pushes
// the archive as an OCI artifact with Helm's own `helm push` action.
//
//	go tool task chart-push REGISTRY=<host[:port][/namespace]>
//
// Credentials follow `task images` (publish/imagebuild/ociimage.CredentialsFromEnv): REGISTRY_USERNAME and
// REGISTRY_PASSWORD, or else the Docker config and its credential helpers. They are checked with a
// cancelled blob upload before anything is packaged, so refused credentials push nothing.
//
// A published chart must carry its dependencies (`helm install` refuses a chart whose charts/ lacks
// one, whatever its condition), so the bitnami archives come from charts/ (`go tool helm dependency
// build` puts them there) or from the folder KEDA_DEMO_BITNAMI_CHARTS names; without them it fails.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"

	"github.com/Masterminds/semver/v3"
	"github.com/google/go-containerregistry/pkg/name"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/cli"
	"helm.sh/helm/v3/pkg/registry"
	"oras.land/oras-go/v2/registry/remote/auth"

	"github.com/keda-demo/keda-demo/cluster/chartdeps"
	"github.com/keda-demo/keda-demo/publish/imagebuild/ociimage"
)

// EnvBitnamiCharts names a folder of <name>-<version>.tgz archives for dependencies missing
// from charts/.
const EnvBitnamiCharts = chartdeps.Env

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "chart-push:", err)
		os.Exit(1)
	}
}

type options struct {
	registry, chartDir, archives, keep string
	insecure                           bool
}

func parse(args []string, stderr io.Writer, getenv func(string) string) (options, error) {
	var o options
	fs := flag.NewFlagSet("chartpush", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.registry, "registry", "", "push to oci://<registry>/<chart name> (host[:port][/namespace])")
	fs.StringVar(&o.chartDir, "chart", ".", "the chart directory")
	fs.StringVar(&o.archives, "bitnami-charts", getenv(EnvBitnamiCharts), "folder of dependency archives missing from charts/ (default $"+EnvBitnamiCharts+")")
	fs.StringVar(&o.keep, "keep", "", "also leave the packaged .tgz in this folder")
	fs.BoolVar(&o.insecure, "insecure", false, "talk plain HTTP to the registry (loopback and private addresses already do)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.registry == "" {
		return o, errors.New("--registry is required")
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	o, err := parse(args, stderr, getenv)
	if err != nil {
		return err
	}
	ch, err := loader.LoadDir(o.chartDir)
	if err != nil {
		return err
	}
	repo, err := ociimage.Repository(o.registry, ociimage.Program{Repository: ch.Name()}, o.insecure)
	if err != nil {
		return err
	}
	creds, err := ociimage.CredentialsFromEnv(getenv)
	if err != nil {
		return err
	}
	if err := (ociimage.Pusher{Creds: creds}).CheckPush(ctx, repo); err != nil {
		return err
	}

	if err := chartdeps.AddArchives(ch, o.archives); err != nil {
		return err
	}
	if err := checkDependencies(ch); err != nil {
		return err
	}
	dir := o.keep
	if dir == "" {
		if dir, err = os.MkdirTemp("", "chartpush-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	archive, err := chartutil.Save(ch, dir)
	if err != nil {
		return fmt.Errorf("package: %w", err)
	}
	fmt.Fprintf(stderr, "packaged %s (credentials from %s)\n", archive, creds.Source)

	client, err := registryClient(repo, creds, stderr)
	if err != nil {
		return err
	}
	push := action.NewPushWithOpts(action.WithPushConfig(&action.Configuration{RegistryClient: client}),
		action.WithPlainHTTP(repo.Scheme() == "http"), action.WithPushOptWriter(stderr))
	push.Settings = cli.New()
	remote := "oci://" + strings.TrimSuffix(o.registry, "/")
	if _, err := push.Run(archive, remote); err != nil {
		return fmt.Errorf("push %s to %s: %w", filepath.Base(archive), remote, err)
	}
	fmt.Fprintf(stdout, "%s/%s --version %s\n", remote, ch.Name(), ch.Metadata.Version)
	return nil
}

// checkDependencies is helm package's check plus the versions: a stale archive left in charts/
// would otherwise be published under the new pin.
func checkDependencies(ch *chart.Chart) error {
	if err := action.CheckDependencies(ch, ch.Metadata.Dependencies); err != nil {
		return fmt.Errorf("%w (run `go tool helm dependency build`, or set %s to a folder with the archives)", err, EnvBitnamiCharts)
	}
	got := map[string]string{}
	for _, d := range ch.Dependencies() {
		got[d.Name()] = d.Metadata.Version
	}
	for _, req := range ch.Metadata.Dependencies {
		c, err := semver.NewConstraint(req.Version)
		if err != nil {
			return fmt.Errorf("dependency %s: version %q: %w", req.Name, req.Version, err)
		}
		v, err := semver.NewVersion(got[req.Name])
		if err != nil || !c.Check(v) {
			return fmt.Errorf("dependency %s is version %q, Chart.yaml wants %s: rebuild charts/ with `go tool helm dependency build`", req.Name, got[req.Name], req.Version)
		}
	}
	return nil
}

// registryClient is Helm's OCI client with the credentials the keychain resolves for repo
// (helm's own would read only its registry config and the Docker config, not
// REGISTRY_USERNAME/REGISTRY_PASSWORD).
func registryClient(repo name.Repository, creds ociimage.Credentials, out io.Writer) (*registry.Client, error) {
	a, err := creds.Keychain.Resolve(repo)
	if err != nil {
		return nil, fmt.Errorf("credentials for %s from %s: %w", repo.RegistryStr(), creds.Source, err)
	}
	cfg, err := a.Authorization()
	if err != nil {
		return nil, fmt.Errorf("credentials for %s from %s: %w", repo.RegistryStr(), creds.Source, err)
	}
	cred := auth.Credential{Username: cfg.Username, Password: cfg.Password, RefreshToken: cfg.IdentityToken, AccessToken: cfg.RegistryToken}
	opts := []registry.ClientOption{
		registry.ClientOptWriter(out),
		registry.ClientOptAuthorizer(auth.Client{
			Cache: auth.NewCache(),
			// One registry per run: the same credential for whatever host:port oras asks about.
			Credential: func(context.Context, string) (auth.Credential, error) { return cred, nil },
		}),
	}
	if repo.Scheme() == "http" {
		opts = append(opts, registry.ClientOptPlainHTTP())
	}
	return registry.NewClient(opts...)
}
