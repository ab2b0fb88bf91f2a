// Package mdlinks checks that the relative links of Markdown files resolve: the file or
// directory a link names exists, and its #anchor is a heading of the target file (GitHub's
// heading slugs) or an explicit <a id/name> there. Links with a scheme (https:, mailto:) are
// not followed.
package mdlinks

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"unicode"
)

// Problem is one link that does not resolve.
type Problem struct {
	File   string // the Markdown file holding the link
	Line   int
	Target string // the link as written
	Reason string
}

// String is "FILE:LINE: link TARGET: REASON".
func (p Problem) String() string {
	return fmt.Sprintf("%s:%d: link %s: %s", p.File, p.Line, p.Target, p.Reason)
}

// Link is a link found in a Markdown file.
type Link struct {
	Line   int
	Target string
}

var (
	// inlineLink matches [text](target) and ![alt](target), with an optional "title".
	inlineLink = regexp.MustCompile(`!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)`)
	// refDef matches a reference definition: [label]: target
	refDef     = regexp.MustCompile(`^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$`)
	codeSpan   = regexp.MustCompile("`+[^`]*`+")
	htmlAnchor = regexp.MustCompile(`<a\s+(?:[^>]*\s)?(?:id|name)="([^"]+)"`)
	atxHeading = regexp.MustCompile(`^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$`)
	setextLine = regexp.MustCompile(`^\s{0,3}(=+|-+)\s*$`)
	mdLinkText = regexp.MustCompile(`!?\[([^\]]*)\]\([^)]*\)`)
	htmlTag    = regexp.MustCompile(`<[^>]+>`)
)

// parsed is what the checker needs of one Markdown file.
type parsed struct {
	links   []Link
	anchors map[string]bool
}

// parse reads the links and the anchors of a Markdown text, skipping fenced code blocks and
// code spans.
func parse(text string) parsed {
	p := parsed{anchors: map[string]bool{}}
	seen := map[string]int{}
	addHeading := func(h string) {
		slug := Slug(h)
		if n := seen[slug]; n > 0 {
			p.anchors[fmt.Sprintf("%s-%d", slug, n)] = true
		} else {
			p.anchors[slug] = true
		}
		seen[slug]++
	}
	fence := ""
	prev := "" // the previous line, a setext heading's text
	for i, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if fence != "" {
			if strings.HasPrefix(trimmed, fence) {
				fence = ""
			}
			prev = ""
			continue
		}
		if strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
			fence = trimmed[:3]
			prev = ""
			continue
		}
		if m := atxHeading.FindStringSubmatch(line); m != nil {
			addHeading(m[2])
		} else if setextLine.MatchString(line) && strings.TrimSpace(prev) != "" && !strings.HasPrefix(strings.TrimSpace(prev), "|") {
			addHeading(strings.TrimSpace(prev))
		}
		for _, m := range htmlAnchor.FindAllStringSubmatch(line, -1) {
			p.anchors[m[1]] = true
		}
		code := codeSpan.ReplaceAllString(line, "")
		for _, m := range inlineLink.FindAllStringSubmatch(code, -1) {
			p.links = append(p.links, Link{Line: i + 1, Target: m[1]})
		}
		if m := refDef.FindStringSubmatch(code); m != nil {
			p.links = append(p.links, Link{Line: i + 1, Target: m[1]})
		}
		prev = line
	}
	return p
}

// Slug is GitHub's anchor for a heading: the rendered text lower-cased, every character that
// is not a letter, digit, space, hyphen or underscore dropped, spaces turned into hyphens.
func Slug(heading string) string {
	text := mdLinkText.ReplaceAllString(heading, "$1")
	text = htmlTag.ReplaceAllString(text, "")
	text = strings.NewReplacer("`", "", "*", "").Replace(text)
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(text)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Check checks the links of the Markdown files; paths are read as given and links resolve
// relative to the directory of the file holding them.
func Check(files []string) ([]Problem, error) {
	cache := map[string]parsed{}
	load := func(path string) (parsed, error) {
		if p, ok := cache[path]; ok {
			return p, nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return parsed{}, err
		}
		p := parse(string(data))
		cache[path] = p
		return p, nil
	}
	var problems []Problem
	for _, file := range files {
		src, err := load(file)
		if err != nil {
			return nil, err
		}
		for _, l := range src.links {
			if reason := check(file, l.Target, load); reason != "" {
				problems = append(problems, Problem{File: file, Line: l.Line, Target: l.Target, Reason: reason})
			}
		}
	}
	return problems, nil
}

// check says why target, a link in file, does not resolve, or "".
func check(file, target string, load func(string) (parsed, error)) string {
	u, err := url.Parse(target)
	if err != nil {
		return fmt.Sprintf("not a URL: %v", err)
	}
	if u.Scheme != "" || u.Host != "" {
		return "" // external: not followed
	}
	dest := file
	if u.Path != "" {
		if strings.HasPrefix(u.Path, "/") {
			return "absolute path: use a path relative to the file"
		}
		dest = filepath.Join(filepath.Dir(file), filepath.FromSlash(u.Path))
		fi, err := os.Stat(dest)
		if err != nil {
			return fmt.Sprintf("%s does not exist", dest)
		}
		if fi.IsDir() {
			if u.Fragment != "" {
				return fmt.Sprintf("anchor #%s on a directory", u.Fragment)
			}
			return ""
		}
	}
	if u.Fragment == "" {
		return ""
	}
	if !strings.EqualFold(filepath.Ext(dest), ".md") {
		return "" // an anchor into a non-Markdown file (a source line, say): not checked
	}
	p, err := load(dest)
	if err != nil {
		return err.Error()
	}
	if !p.anchors[u.Fragment] {
		return fmt.Sprintf("%s has no heading with anchor #%s", dest, u.Fragment)
	}
	return ""
}
