// Package examples_test checks that every example Caddyfile adapts to JSON
// with the k1sso handler in it and its secrets still placeholders.
package examples_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/k1sso/k1sso/caddymodule"
	"github.com/k1sso/k1sso/internal/testenv"
)

// wantExamples must exist; any other *.Caddyfile in examples/ is checked too.
var wantExamples = []string{"single.Caddyfile", "enforce.Caddyfile", "redis.Caddyfile", "admin-basic-auth.Caddyfile"}

func TestExamplesAdapt(t *testing.T) {
	root := testenv.RepoRoot()
	files, err := filepath.Glob(filepath.Join(root, "examples", "*.Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	for _, w := range wantExamples {
		if !slices.Contains(names, w) {
			t.Errorf("examples/%s is missing", w)
		}
	}
	files = append(files, filepath.Join(root, "Caddyfile"))
	for _, f := range files {
		name, _ := filepath.Rel(root, f)
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			out, err := testenv.AdaptCaddyfile(string(src))
			if err != nil {
				t.Fatalf("caddy adapt: %v", err)
			}
			hs := k1ssoHandlers(t, out)
			if len(hs) != 1 {
				t.Fatalf("adapted JSON has %d k1sso handlers, want 1", len(hs))
			}
			// Every field of the handler's JSON is a field of the module.
			dec := json.NewDecoder(bytes.NewReader(hs[0]))
			dec.DisallowUnknownFields()
			var h struct {
				Name string `json:"handler"`
				caddymodule.Handler
			}
			if err := dec.Decode(&h); err != nil {
				t.Fatalf("k1sso JSON does not decode into the module: %v\n%s", err, hs[0])
			}
			// Secrets from the environment stay placeholders.
			for _, env := range []string{"K1_CLIENT_SECRET", "K1SSO_COOKIE_SECRET", "K1SSO_REDIS_URL"} {
				ph := "{env." + env + "}"
				if strings.Contains(string(src), ph) && !strings.Contains(string(hs[0]), ph) {
					t.Errorf("%s was not kept as a placeholder in the adapted JSON", ph)
				}
			}
		})
	}
}

// k1ssoHandlers returns the JSON of every k1sso handler in an adapted
// config, wherever it is nested (routes, subroutes).
func k1ssoHandlers(t *testing.T, cfg []byte) []json.RawMessage {
	t.Helper()
	var root any
	if err := json.Unmarshal(cfg, &root); err != nil {
		t.Fatal(err)
	}
	var out []json.RawMessage
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if v["handler"] == "k1sso" {
				b, _ := json.Marshal(v)
				out = append(out, b)
				return
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(root)
	return out
}

// TestCaddyfilesFormatted keeps every Caddyfile the project shows in caddy
// fmt style: the example files, the demo's Caddyfile and each caddyfile
// block of README.md and docs/*.md. Caddy warns "Caddyfile input is not
// formatted" for anything else, and users copy these.
func TestCaddyfilesFormatted(t *testing.T) {
	root := testenv.RepoRoot()
	examples, err := filepath.Glob(filepath.Join(root, "examples", "*.Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, src []byte) {
		if w, bad := caddyfile.FormattingDifference(name, src); bad {
			t.Errorf("%s: %s (line %d)", name, w.Message, w.Line)
		}
	}
	for _, f := range append(examples, filepath.Join(root, "Caddyfile")) {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name, _ := filepath.Rel(root, f)
		check(name, src)
	}
	blocks := 0
	for _, f := range append(docs, filepath.Join(root, "README.md")) {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name, _ := filepath.Rel(root, f)
		for i, m := range caddyfileBlock.FindAllSubmatch(src, -1) {
			blocks++
			check(fmt.Sprintf("%s, caddyfile block %d", name, i+1), m[1])
		}
	}
	if blocks == 0 {
		t.Error("no caddyfile block found in README.md and docs/")
	}
}

// caddyfileBlock is a fenced caddyfile code block of a Markdown page.
var caddyfileBlock = regexp.MustCompile("(?ms)^```caddyfile\n(.*?)^```")
