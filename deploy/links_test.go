package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReadmeLinks: every relative link of the front-door documents (README.md, ARCHITECTURE.md,
// CHANGELOG.md, docs/*.md and the packages' READMEs) names a file or folder of the repository,
// and a #fragment names a heading of that file. A moved section leaves no dead link behind.
func TestReadmeLinks(t *testing.T) {
	docs := []string{"../README.md", "../ARCHITECTURE.md", "../CHANGELOG.md"}
	for _, glob := range []string{"../docs/*.md", "../*/README.md", "../deploy/*/README.md", "../deploy/bench/results/README.md"} {
		m, err := filepath.Glob(glob)
		require.NoError(t, err)
		docs = append(docs, m...)
	}
	checked := 0
	for _, doc := range docs {
		b, err := os.ReadFile(doc)
		require.NoError(t, err)
		for _, target := range relativeLinks(string(b)) {
			checked++
			file, frag, _ := strings.Cut(target, "#")
			path := doc
			if file != "" {
				path = filepath.Join(filepath.Dir(doc), file)
				if _, err := os.Stat(path); err != nil {
					assert.Failf(t, "dead link", "%s links to %s, which does not exist", doc, target)
					continue
				}
			}
			if frag == "" || !strings.HasSuffix(path, ".md") {
				continue
			}
			linked, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.Contains(t, headingAnchors(string(linked)), frag, "%s links to %s: no such heading", doc, target)
		}
	}
	require.Greater(t, checked, 20, "the link parser found almost no links: it is broken")
}

// markdownLink matches [text](target) outside code; the target ends at a space or ')'.
var markdownLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// relativeLinks returns the link targets of a markdown text that point inside the repository
// (no scheme, no mailto), skipping fenced code blocks.
func relativeLinks(text string) []string {
	var out []string
	fenced := false
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		if fenced {
			continue
		}
		for _, m := range markdownLink.FindAllStringSubmatch(line, -1) {
			if target := m[1]; !strings.Contains(target, "://") && !strings.HasPrefix(target, "mailto:") {
				out = append(out, target)
			}
		}
	}
	return out
}

// headingAnchors returns the anchors GitHub gives a markdown file's headings: lower case, every
// character but letters, digits, '-', '_' and spaces dropped, spaces turned into '-'.
func headingAnchors(text string) []string {
	var out []string
	fenced := false
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
		}
		if fenced || !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(title) {
			switch {
			case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
				b.WriteRune(r)
			case r == ' ':
				b.WriteRune('-')
			}
		}
		out = append(out, b.String())
	}
	return out
}
