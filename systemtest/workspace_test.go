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

// The README's layout table names every top-level folder of the repository, and every path it
// names exists: a newcomer finds the code where the table says.
func TestREADMELayoutMatchesTree(t *testing.T) {
	raw, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(raw), "\n## Layout\n")
	require.True(t, ok, "README has no ## Layout section")
	table, _, _ := strings.Cut(rest, "\n## ")
	named := map[string]bool{}
	for _, line := range strings.Split(table, "\n") {
		cell, _, ok := strings.Cut(strings.TrimPrefix(line, "| "), " |")
		if !ok || !strings.HasPrefix(line, "| `") {
			continue
		}
		for _, f := range strings.Split(cell, ",") {
			p := strings.Trim(strings.TrimSpace(f), "`")
			_, err := os.Stat(filepath.Join("..", p))
			require.NoError(t, err, "README layout names %s", p)
			named[strings.TrimSuffix(p, "/")] = true
		}
	}
	entries, err := os.ReadDir("..")
	require.NoError(t, err)
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			require.True(t, named[e.Name()], "top-level folder %s/ is missing from the README's layout table", e.Name())
		}
	}
}
