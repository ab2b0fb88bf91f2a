package mdlinks

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSlug(t *testing.T) {
	for _, tc := range []struct{ heading, want string }{
		{"Data path", "data-path"},
		{"Data path (L2 mode)", "data-path-l2-mode"},
		{"What `fabricctl attach` does", "what-fabricctl-attach-does"},
		{"Two commands (fresh Debian 12 machine, as root)", "two-commands-fresh-debian-12-machine-as-root"},
		{"By hand vs. ovsfabric: **the** [recipes](x.md)", "by-hand-vs-ovsfabric-the-recipes"},
		{"snake_case and a-hyphen", "snake_case-and-a-hyphen"},
		{"Peers & failures", "peers--failures"},
	} {
		if got := Slug(tc.heading); got != tc.want {
			t.Errorf("Slug(%q) = %q, want %q", tc.heading, got, tc.want)
		}
	}
}

// write creates the files of a small doc tree under a temporary directory.
func write(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestCheck(t *testing.T) {
	dir := write(t, map[string]string{
		"README.md": "# Top\n\nSee [arch](docs/arch.md), [its data path](docs/arch.md#data-path), " +
			"[the second one](docs/arch.md#data-path-1), [code](docs), [web](https://example.com/x#y), " +
			"[mail](mailto:a@b.c), [self](#top), [explicit](docs/arch.md#pinned), [source](go.mod#L3).\n\n" +
			"```sh\n[not a link](nowhere.md)\n```\n\n`[nor this](nowhere.md)`\n\n[ref]: docs/arch.md#setext-heading\n",
		"go.mod": "module x\n",
		"docs/arch.md": "# Arch\n\n## Data path\n\ntext\n\n## Data path\n\n<a id=\"pinned\"></a>\n\nSetext heading\n---\n\n" +
			"| a |\n|---|\n",
	})
	good := []string{filepath.Join(dir, "README.md"), filepath.Join(dir, "docs/arch.md")}
	problems, err := Check(good)
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) != 0 {
		t.Errorf("good tree: %v", problems)
	}

	bad := write(t, map[string]string{
		"README.md": "# Top\n\n[missing file](docs/nope.md)\n[missing anchor](docs/arch.md#data-paths)\n" +
			"[missing self anchor](#bottom)\n[absolute](/etc/passwd)\n[anchor on a dir](docs#x)\n" +
			"[ref]: docs/arch.md#nothing-here\n",
		"docs/arch.md": "# Arch\n\n## Data path\n\n```\n## Not a heading\n```\n[code block heading](#not-a-heading)\n",
	})
	problems, err = Check([]string{filepath.Join(bad, "README.md"), filepath.Join(bad, "docs/arch.md")})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"README.md:3: link docs/nope.md: ",
		"README.md:4: link docs/arch.md#data-paths: ",
		"README.md:5: link #bottom: ",
		"README.md:6: link /etc/passwd: absolute path",
		"README.md:7: link docs#x: anchor #x on a directory",
		"README.md:8: link docs/arch.md#nothing-here: ",
		"arch.md:8: link #not-a-heading: ",
	}
	if len(problems) != len(want) {
		t.Fatalf("bad tree: %d problems, want %d:\n%v", len(problems), len(want), problems)
	}
	for i, p := range problems {
		if !strings.Contains(p.String(), want[i]) {
			t.Errorf("problem %d = %q, want it to contain %q", i, p, want[i])
		}
	}
	if _, err := Check([]string{filepath.Join(bad, "missing.md")}); err == nil {
		t.Error("Check of a missing file: no error")
	}
}
