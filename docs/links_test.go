// Package docs holds the project's documentation; its test checks that every relative link
// and anchor in docs/*.md and README.md resolves, so `make test` catches a broken one.
package docs

import (
	"path/filepath"
	"testing"

	"github.com/ovsfabric/ovsfabric/internal/mdlinks"
)

func TestLinksResolve(t *testing.T) {
	files, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join("..", "README.md"))
	if len(files) < 2 {
		t.Fatalf("no Markdown files found: %v", files)
	}
	problems, err := mdlinks.Check(files)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
}
