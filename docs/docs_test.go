// Package docs_test checks the manual: every relative link of the README,
// CONTRIBUTING.md and docs/*.md reaches a file, and a link to a section
// reaches a heading or an explicit anchor of that file.
package docs_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/probe/kinds"
)

var (
	fence   = regexp.MustCompile("(?s)```.*?```")
	link    = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	anchor  = regexp.MustCompile(`<a id="([^"]+)"`)
	heading = regexp.MustCompile(`(?m)^#+ (.*)$`)
	notSlug = regexp.MustCompile(`[^\p{L}\p{N}\- _]`)
)

// anchors returns the fragments a Markdown file answers: its explicit
// anchors and its headings as GitHub spells them (lower case, punctuation
// dropped, spaces as '-').
func anchors(t *testing.T, path string) map[string]bool {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, m := range anchor.FindAllStringSubmatch(string(b), -1) {
		out[m[1]] = true
	}
	for _, m := range heading.FindAllStringSubmatch(string(b), -1) {
		out[strings.ReplaceAll(notSlug.ReplaceAllString(strings.ToLower(m[1]), ""), " ", "-")] = true
	}
	return out
}

func TestLinksResolve(t *testing.T) {
	files, _ := filepath.Glob("*.md")
	files = append(files, "../README.md", "../CONTRIBUTING.md")
	if len(files) < 8 {
		t.Fatalf("pages: %v", files)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(fence.ReplaceAllString(string(b), ""), -1) {
			target, frag, _ := strings.Cut(m[1], "#")
			if strings.Contains(target, "://") {
				continue
			}
			path := f
			if target != "" {
				path = filepath.Join(filepath.Dir(f), target)
			}
			if _, err := os.Stat(path); err != nil {
				t.Errorf("%s: link %s: %v", f, m[1], err)
				continue
			}
			if frag != "" && strings.HasSuffix(path, ".md") && !anchors(t, path)[frag] {
				t.Errorf("%s: link %s: no such section in %s", f, m[1], path)
			}
		}
	}
}

var (
	yamlBlock = regexp.MustCompile("(?s)```yaml\n(.*?)```")
	topChecks = regexp.MustCompile(`(?m)^checks:`)
)

// TestConfigExamplesValidate: every YAML example of the manual that is a
// whole config (a top-level checks: key) loads as healthbridge loads a
// file; one that names a kind this build leaves out is skipped in the lean
// build.
func TestConfigExamplesValidate(t *testing.T) {
	files, _ := filepath.Glob("*.md")
	files = append(files, "../README.md")
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range yamlBlock.FindAllStringSubmatch(string(b), -1) {
			if !topChecks.MatchString(m[1]) {
				continue
			}
			if kinds.Lean && (strings.Contains(m[1], "grpc") || strings.Contains(m[1], "kubernetesPod")) {
				continue
			}
			n++
			if _, err := config.Parse([]byte(m[1]), kinds.Rules); err != nil {
				t.Errorf("%s, YAML block %d: %v\n%s", f, i, err, m[1])
			}
		}
	}
	if n < 5 {
		t.Fatalf("only %d config examples found", n)
	}
}
