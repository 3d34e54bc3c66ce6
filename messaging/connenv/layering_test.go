package connenv_test

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The dependency points one way: connenv knows envread and the connection types; envread
// knows no package of this repository, and rabbitqueue and mongostore know no environment variable.
func TestLayering(t *testing.T) {
	const repo = "github.com/keda-demo/keda-demo/"
	tests := []struct {
		dir       string
		forbidden func(path string) bool
	}{
		{"../envread", func(p string) bool { return strings.HasPrefix(p, repo) }},
		{"../rabbitqueue", func(p string) bool { return p == repo+"messaging/envread" || p == repo+"messaging/connenv" }},
		{"../mongostore", func(p string) bool { return p == repo+"messaging/envread" || p == repo+"messaging/connenv" }},
	}
	for _, tc := range tests {
		files, err := filepath.Glob(filepath.Join(tc.dir, "*.go"))
		require.NoError(t, err)
		require.NotEmpty(t, files)
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			ast, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
			require.NoError(t, err)
			for _, imp := range ast.Imports {
				p, err := strconv.Unquote(imp.Path.Value)
				require.NoError(t, err)
				require.False(t, tc.forbidden(p), "%s imports %s", f, p)
			}
		}
	}
}
