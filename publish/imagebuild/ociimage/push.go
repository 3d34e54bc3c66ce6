package ociimage

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/match"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Environment variables holding registry credentials.
const (
	EnvUsername = "REGISTRY_USERNAME"
	EnvPassword = "REGISTRY_PASSWORD"
)

// RefNameAnnotation names an index inside an OCI layout.
const RefNameAnnotation = "org.opencontainers.image.ref.name"

// WriteLayout adds (or replaces) idx in the OCI layout at dir under the reference refName
// (e.g. "keda-demo-app:0.1.0"), creating the layout if needed.
func WriteLayout(dir, refName string, idx v1.ImageIndex) error {
	p, err := layout.FromPath(dir)
	if err != nil {
		if _, statErr := os.Stat(dir + "/index.json"); statErr == nil {
			return fmt.Errorf("OCI layout %s: %w", dir, err)
		}
		if p, err = layout.Write(dir, empty.Index); err != nil {
			return fmt.Errorf("OCI layout %s: %w", dir, err)
		}
	}
	return p.ReplaceIndex(idx, match.Annotation(RefNameAnnotation, refName),
		layout.WithAnnotations(map[string]string{RefNameAnnotation: refName}))
}

// Credentials says where the credentials come from, without saying what they are.
type Credentials struct {
	Keychain authn.Keychain
	// Source is "REGISTRY_USERNAME/REGISTRY_PASSWORD" or "Docker config (~/.docker/config.json
	// and credential helpers)", for messages.
	Source string
	// FromEnv is true when REGISTRY_USERNAME/REGISTRY_PASSWORD are used.
	FromEnv bool
}

type staticKeychain struct{ auth authn.Authenticator }

func (k staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) { return k.auth, nil }

// CredentialsFromEnv uses REGISTRY_USERNAME and REGISTRY_PASSWORD when set (both or neither),
// and the user's Docker config (authn.DefaultKeychain) otherwise. Nothing is written anywhere.
func CredentialsFromEnv(getenv func(string) string) (Credentials, error) {
	user, pass := getenv(EnvUsername), getenv(EnvPassword)
	switch {
	case user != "" && pass != "":
		return Credentials{
			Keychain: staticKeychain{authn.FromConfig(authn.AuthConfig{Username: user, Password: pass})},
			Source:   EnvUsername + "/" + EnvPassword, FromEnv: true,
		}, nil
	case user != "" || pass != "":
		return Credentials{}, fmt.Errorf("set both %s and %s, or neither (to use your Docker config)", EnvUsername, EnvPassword)
	}
	return Credentials{Keychain: authn.DefaultKeychain, Source: "Docker config (docker login)"}, nil
}

// ErrAuth marks a registry's refusal of the credentials.
var ErrAuth = errors.New("registry refused the credentials")

// explain turns a registry's 401/403 into a message that says what to do; it never includes
// the credentials themselves.
func explain(err error, repo name.Repository, creds Credentials) error {
	var terr *transport.Error
	if errors.As(err, &terr) && (terr.StatusCode == http.StatusUnauthorized || terr.StatusCode == http.StatusForbidden) {
		said := http.StatusText(terr.StatusCode)
		if len(terr.Errors) > 0 {
			said = string(terr.Errors[0].Code) + ": " + terr.Errors[0].Message
		}
		if a, rerr := creds.Keychain.Resolve(repo); rerr == nil && a == authn.Anonymous {
			return fmt.Errorf("%w: %s answered %d (%s) to an anonymous push to %s: no credentials for it in %s; set %s and %s, or run docker login %s",
				ErrAuth, repo.RegistryStr(), terr.StatusCode, said, repo.Name(), creds.Source, EnvUsername, EnvPassword, repo.RegistryStr())
		}
		return fmt.Errorf("%w: %s answered %d (%s) to a push to %s with the credentials from %s; check the username, the password and its push permission (or run docker login %s)",
			ErrAuth, repo.RegistryStr(), terr.StatusCode, said, repo.Name(), creds.Source, repo.RegistryStr())
	}
	return err
}

// Pusher pushes indexes with one set of credentials.
type Pusher struct {
	Creds Credentials
	// Transport is the HTTP transport (remote.DefaultTransport if nil).
	Transport http.RoundTripper
}

func (p Pusher) transport() http.RoundTripper {
	if p.Transport != nil {
		return p.Transport
	}
	return remote.DefaultTransport
}

// CheckPush makes sure the credentials may push to every repository before anything is pushed:
// it starts a blob upload in each (and cancels it), which is what the registry authorises a push
// by. A wrong password fails here with ErrAuth.
func (p Pusher) CheckPush(ctx context.Context, repos ...name.Repository) error {
	for _, repo := range repos {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := remote.CheckPushPermission(repo.Tag("check"), p.Creds.Keychain, p.transport()); err != nil {
			return explain(err, repo, p.Creds)
		}
	}
	return nil
}

// Push writes idx (its images and blobs) under the first tag and points the other tags at it.
// It returns the index digest.
func (p Pusher) Push(ctx context.Context, idx v1.ImageIndex, tags []name.Tag) (v1.Hash, error) {
	if len(tags) == 0 {
		return v1.Hash{}, errors.New("no tag to push")
	}
	d, err := idx.Digest()
	if err != nil {
		return v1.Hash{}, err
	}
	pusher, err := remote.NewPusher(remote.WithContext(ctx), remote.WithAuthFromKeychain(p.Creds.Keychain),
		remote.WithTransport(p.transport()), remote.WithJobs(4))
	if err != nil {
		return v1.Hash{}, err
	}
	for _, t := range tags {
		if err := pusher.Push(ctx, t, idx); err != nil {
			return v1.Hash{}, fmt.Errorf("push %s: %w", t, explain(err, t.Context(), p.Creds))
		}
	}
	return d, nil
}
