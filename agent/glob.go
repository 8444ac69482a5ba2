package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
)

// glob is a compiled filePattern. The literal directories at its front are kept apart as base,
// so discovery starts there and watches only what the pattern can reach.
type glob struct {
	pattern string
	base    string   // absolute directory with no wildcards
	segs    []string // the rest, one path element each; "**" matches any number of directories
}

const globMeta = `*?[{\`

// maxGlobDirs bounds how many directories one walk of a ** pattern visits, so a pattern like
// /** cannot make each rescan read the whole file system.
const maxGlobDirs = 10000

func compileGlob(pattern string) (*glob, error) {
	if !filepath.IsAbs(pattern) {
		return nil, fmt.Errorf("must be an absolute path, got %q", pattern)
	}
	clean := filepath.Clean(pattern)
	parts := strings.Split(clean, string(filepath.Separator))[1:]
	g := &glob{pattern: pattern, base: string(filepath.Separator)}
	i := 0
	for ; i < len(parts)-1 && !strings.ContainsAny(parts[i], globMeta); i++ {
		g.base = filepath.Join(g.base, parts[i])
	}
	for _, seg := range parts[i:] {
		if seg == "" {
			return nil, errors.New("must name a file, not a directory")
		}
		if strings.Contains(seg, "**") && seg != "**" {
			return nil, fmt.Errorf("** must be a whole path element, got %q", seg)
		}
		if !doublestar.ValidatePattern(seg) {
			return nil, fmt.Errorf("invalid pattern element %q (an unclosed [ or {, or a trailing \\)", seg)
		}
		g.segs = append(g.segs, seg)
	}
	if len(g.segs) == 0 || g.segs[len(g.segs)-1] == "**" && len(g.segs) == 1 && g.base == "/" {
		return nil, errors.New("must name files, not the whole file system")
	}
	return g, nil
}

// matchSeg matches one path element against one pattern element with the Amazon Kinesis
// Agent's glob syntax: SourceFile hands filePattern to Java's "glob:" PathMatcher, where * and
// ? stay within an element, [...] is a class ([!...] negates), {a,b} matches either
// subpattern, and \ escapes. doublestar implements the same syntax, and [^...] too.
func matchSeg(pattern, name string) bool {
	ok, _ := doublestar.Match(pattern, name)
	return ok
}

// match reports whether an absolute, clean path matches the pattern.
func (g *glob) match(path string) bool {
	rel, err := filepath.Rel(g.base, path)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return false
	}
	return matchSegs(g.segs, strings.Split(rel, string(filepath.Separator)))
}

func matchSegs(segs, parts []string) bool {
	for len(segs) > 0 {
		if segs[0] == "**" {
			// ** at the end matches any file below; otherwise try every split point.
			for k := 0; k <= len(parts); k++ {
				if matchSegs(segs[1:], parts[k:]) {
					return true
				}
			}
			return false
		}
		if len(parts) == 0 {
			return false
		}
		if !matchSeg(segs[0], parts[0]) {
			return false
		}
		segs, parts = segs[1:], parts[1:]
	}
	return len(parts) == 0
}

// walk calls fn for every existing path that matches, and returns the directories it read,
// which are the ones worth watching for new files. A missing base is not an error: the
// directory may be created later.
func (g *glob) walk(fn func(path string)) (dirs []string, err error) {
	w := &globWalk{fn: fn, seen: map[string]bool{}}
	w.visit(g.base, g.segs)
	return w.dirs, w.err
}

type globWalk struct {
	fn   func(string)
	dirs []string
	seen map[string]bool // directory+segment index visits, so ** does not repeat work
	err  error
}

func (w *globWalk) visit(dir string, segs []string) {
	key := fmt.Sprintf("%s\x00%d", dir, len(segs))
	if w.seen[key] {
		return
	}
	w.seen[key] = true
	if len(segs) == 0 {
		return
	}
	seg := segs[0]
	last := len(segs) == 1
	if seg == "**" {
		if last {
			// "dir/**" means every file below dir.
			w.readDir(dir, func(e fs.DirEntry, p string) {
				if e.IsDir() {
					w.visit(p, segs)
				} else {
					w.fn(p)
				}
			})
			return
		}
		w.visit(dir, segs[1:]) // ** matching no directory
		w.readDir(dir, func(e fs.DirEntry, p string) {
			if e.IsDir() { // symbolic links to directories are not followed, so ** cannot loop
				w.visit(p, segs)
			}
		})
		return
	}
	if !strings.ContainsAny(seg, globMeta) {
		p := filepath.Join(dir, seg)
		if last {
			if _, err := os.Lstat(p); err == nil {
				w.fn(p)
			}
			if !w.seen[dir] {
				w.seen[dir] = true
				w.dirs = append(w.dirs, dir)
			}
			return
		}
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			w.visit(p, segs[1:])
		}
		return
	}
	w.readDir(dir, func(e fs.DirEntry, p string) {
		if !matchSeg(seg, e.Name()) {
			return
		}
		if last {
			w.fn(p)
			return
		}
		if e.IsDir() || e.Type()&fs.ModeSymlink != 0 {
			if fi, err := os.Stat(p); err == nil && fi.IsDir() {
				w.visit(p, segs[1:])
			}
		}
	})
}

func (w *globWalk) readDir(dir string, fn func(e fs.DirEntry, path string)) {
	if len(w.dirs) >= maxGlobDirs {
		if w.err == nil {
			w.err = fmt.Errorf("pattern reaches more than %d directories; the rest are not scanned", maxGlobDirs)
		}
		return
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) && w.err == nil {
			w.err = err
		}
		return
	}
	if !w.seen[dir] {
		w.seen[dir] = true
		w.dirs = append(w.dirs, dir)
	}
	for _, e := range entries {
		fn(e, filepath.Join(dir, e.Name()))
	}
}

// compressedSuffixes are the names of compressed files, which are never tailed even when the
// pattern matches them. The Amazon Kinesis Agent's SourceFile.validateFile leaves out .gz, .bz2
// and .zip the same way (lower-cased, so .GZ too); .xz and .zst are logrotate's other common
// compressors.
var compressedSuffixes = []string{".gz", ".bz2", ".zip", ".xz", ".zst"}

// isCompressedName reports whether a file name ends in a compressed file's suffix, in any case.
func isCompressedName(name string) bool {
	for _, suf := range compressedSuffixes {
		if len(name) >= len(suf) && strings.EqualFold(name[len(name)-len(suf):], suf) {
			return true
		}
	}
	return false
}

// exclusion is one of a flow's excludePatterns: a pattern matched against the whole path, or,
// when it has no separator, against the file's name.
type exclusion struct {
	name string // pattern for the file's name, or ""
	path *glob  // pattern for the whole path, or nil
}

func compileExclude(pattern string) (exclusion, error) {
	switch {
	case pattern == "":
		return exclusion{}, errors.New("must not be empty")
	case !strings.Contains(pattern, string(filepath.Separator)):
		if !doublestar.ValidatePattern(pattern) {
			return exclusion{}, fmt.Errorf("invalid pattern %q (an unclosed [ or {, or a trailing \\)", pattern)
		}
		return exclusion{name: pattern}, nil
	}
	g, err := compileGlob(pattern)
	if err != nil {
		return exclusion{}, fmt.Errorf("a pattern with a path separator %v", err)
	}
	return exclusion{path: g}, nil
}

func (e exclusion) match(path string) bool {
	if e.path != nil {
		return e.path.match(path)
	}
	return matchSeg(e.name, filepath.Base(path))
}

// fileFilter is a flow's pattern with its exclusions.
type fileFilter struct {
	exclude []exclusion
}

func newFileFilter(patterns []string) (*fileFilter, error) {
	ff := &fileFilter{}
	for _, p := range patterns {
		e, err := compileExclude(p)
		if err != nil {
			return nil, err
		}
		ff.exclude = append(ff.exclude, e)
	}
	return ff, nil
}

// excluded says why a path the pattern matched is not tailed, or "" when it is.
func (ff *fileFilter) excluded(path string) string {
	if isCompressedName(filepath.Base(path)) {
		return "compressed"
	}
	for _, e := range ff.exclude {
		if e.match(path) {
			return "excludePatterns"
		}
	}
	return ""
}
