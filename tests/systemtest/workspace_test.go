package systemtest

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// The README is a front page a newcomer reads in minutes, also as `helm show readme` prints it:
// at most 350 lines, no prose line over 160 characters, and every page of docs/ linked by its
// file name. Every relative link of the README and of docs/ names a file that exists.
func TestREADMEFrontPage(t *testing.T) {
	raw, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	readme := string(raw)
	lines := strings.Split(strings.TrimSuffix(readme, "\n"), "\n")
	require.LessOrEqual(t, len(lines), 350, "README.md has %d lines: move reference material to docs/", len(lines))
	code := false
	for i, l := range lines {
		if strings.HasPrefix(l, "```") {
			code = !code
			continue
		}
		if !code && !strings.HasPrefix(l, "|") {
			require.LessOrEqual(t, utf8.RuneCountInString(l), 160, "README.md:%d is %d characters long", i+1, utf8.RuneCountInString(l))
		}
	}
	pages, err := filepath.Glob("../../docs/*.md")
	require.NoError(t, err)
	require.NotEmpty(t, pages)
	for _, p := range pages {
		name := filepath.Base(p)
		require.Contains(t, readme, "["+name+"](docs/"+name+")", "docs/%s is not linked from the README by its file name", name)
	}
	for _, doc := range append([]string{"../../README.md"}, pages...) {
		b, err := os.ReadFile(doc)
		require.NoError(t, err)
		for _, m := range mdLink.FindAllStringSubmatch(string(b), -1) {
			target, _, _ := strings.Cut(m[1], "#")
			if target == "" || strings.Contains(target, "://") {
				continue
			}
			_, err := os.Stat(filepath.Join(filepath.Dir(doc), target))
			require.NoError(t, err, "%s links to %s", doc, m[1])
		}
	}
}

var mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// The README's layout table names every top-level folder of the repository, and every path it
// names exists: a newcomer finds the code where the table says.
func TestREADMELayoutMatchesTree(t *testing.T) {
	raw, err := os.ReadFile("../../README.md")
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
			_, err := os.Stat(filepath.Join("../..", p))
			require.NoError(t, err, "README layout names %s", p)
			named[strings.TrimSuffix(p, "/")] = true
		}
	}
	entries, err := os.ReadDir("../..")
	require.NoError(t, err)
	var folders []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			folders = append(folders, e.Name())
		}
	}
	require.LessOrEqual(t, len(folders), 10, "the root holds %d folders %v: a newcomer should see the design's parts first; group the rest", len(folders), folders)
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			require.True(t, named[e.Name()], "top-level folder %s/ is missing from the README's layout table", e.Name())
		}
	}
}
