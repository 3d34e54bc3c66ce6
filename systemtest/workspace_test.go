package systemtest

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/mod/modfile"
	"gopkg.in/yaml.v3"
)

// The test command (Taskfile MODULES) must list every module of go.work: at a workspace root,
// `go test ./...` covers the root module only, so a module missing there would go untested.
func TestTaskfileListsEveryWorkspaceModule(t *testing.T) {
	raw, err := os.ReadFile("../go.work")
	require.NoError(t, err)
	work, err := modfile.ParseWork("go.work", raw, nil)
	require.NoError(t, err)
	var used []string
	for _, u := range work.Use {
		used = append(used, filepath.Clean(u.Path))
	}

	raw, err = os.ReadFile("../Taskfile.yml")
	require.NoError(t, err)
	var tf struct{ Vars map[string]string }
	require.NoError(t, yaml.Unmarshal(raw, &tf))
	var listed []string
	for _, m := range strings.Fields(tf.Vars["MODULES"]) {
		listed = append(listed, filepath.Clean(m))
	}
	sort.Strings(used)
	sort.Strings(listed)
	require.NotEmpty(t, used)
	require.Equal(t, used, listed)
}
