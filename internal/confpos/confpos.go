// Package confpos decodes a YAML config strictly and reports problems the
// way operators need them: "file:line: key.path: what is wrong".
//
// yaml.v3 loses KnownFields when a custom UnmarshalYAML calls node.Decode,
// so a file is decoded twice: once strictly into the struct, once into a
// yaml.Node from which the line of every key path is looked up.
package confpos

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Doc is a decoded config file with the positions of its keys.
type Doc struct {
	File  string
	lines map[string]int
	errs  []error
}

// Load reads and strictly decodes file into v.
func Load(file string, v any) (*Doc, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Decode(file, data, v)
}

var lineRE = regexp.MustCompile(`line (\d+): (.*)`)

// Decode strictly decodes data (named file in messages) into v. Unknown
// keys and type mismatches are reported as file:line: key: problem.
func Decode(file string, data []byte, v any) (*Doc, error) {
	d := &Doc{File: file, lines: map[string]int{}}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return d, d.wrapYAMLErr(err)
	}
	if len(root.Content) > 0 {
		d.walk(root.Content[0], "")
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return d, d.wrapYAMLErr(err)
	}
	return d, nil
}

// wrapYAMLErr rewrites yaml.v3's "line N: msg" into file:N: key: msg.
func (d *Doc) wrapYAMLErr(err error) error {
	var te *yaml.TypeError
	var msgs []string
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	var out []error
	for _, m := range msgs {
		m = strings.TrimPrefix(m, "yaml: ")
		if sm := lineRE.FindStringSubmatch(m); sm != nil {
			n, _ := strconv.Atoi(sm[1])
			out = append(out, fmt.Errorf("%s:%d: %s: %s", d.File, n, d.keyAt(n), sm[2]))
		} else {
			out = append(out, fmt.Errorf("%s: %s", d.File, m))
		}
	}
	return errors.Join(out...)
}

// keyAt returns the deepest key path that starts on line n.
func (d *Doc) keyAt(n int) string {
	best := ""
	for k, l := range d.lines {
		if l == n && len(k) > len(best) {
			best = k
		}
	}
	if best == "" {
		return "(document)"
	}
	return best
}

func (d *Doc) walk(n *yaml.Node, path string) {
	if path != "" {
		if _, ok := d.lines[path]; !ok {
			d.lines[path] = n.Line
		}
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			p := k
			if path != "" {
				p = path + "." + k
			}
			d.lines[p] = n.Content[i].Line
			d.walk(n.Content[i+1], p)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			d.walk(c, fmt.Sprintf("%s[%d]", path, i))
		}
	}
}

// Line returns the line of key path ("devices[2].modbus.url"), or of its
// nearest present parent, or 0.
func (d *Doc) Line(path string) int {
	for p := path; p != ""; {
		if l, ok := d.lines[p]; ok {
			return l
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return 0
}

// Has reports whether key path is present in the file.
func (d *Doc) Has(path string) bool { _, ok := d.lines[path]; return ok }

// Errorf records a problem at key path.
func (d *Doc) Errorf(path, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if l := d.Line(path); l > 0 {
		d.errs = append(d.errs, fmt.Errorf("%s:%d: %s: %s", d.File, l, path, msg))
		return
	}
	d.errs = append(d.errs, fmt.Errorf("%s: %s: %s", d.File, path, msg))
}

// Check records err (if any) at key path; errors from nested validators
// that already name a sub-key ("url: ...") keep it.
func (d *Doc) Check(path string, err error) {
	if err == nil {
		return
	}
	for _, e := range unjoin(err) {
		msg := e.Error()
		if k, rest, ok := strings.Cut(msg, ": "); ok && !strings.ContainsAny(k, " ") {
			// Validators name keys relative to their section ("url") or
			// with the section's own name first ("snmp.v3.user").
			last := path[strings.LastIndexAny(path, ".]")+1:]
			if sub := strings.TrimPrefix(k, last+"."); sub != k || d.Has(path+"."+k) {
				d.Errorf(path+"."+sub, "%s", rest)
				continue
			}
		}
		d.Errorf(path, "%s", msg)
	}
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// Err returns every recorded problem joined, or nil.
func (d *Doc) Err() error { return errors.Join(d.errs...) }

// Secret resolves "${ENV}" and "file:/path" references. A secret file that
// others can read is refused: secrets must not leak through loose modes.
func Secret(v string) (string, error) {
	switch {
	case strings.HasPrefix(v, "${") && strings.HasSuffix(v, "}"):
		name := v[2 : len(v)-1]
		s, ok := os.LookupEnv(name)
		if !ok {
			return "", fmt.Errorf("environment variable %s is not set", name)
		}
		return s, nil
	case strings.HasPrefix(v, "file:"):
		path := strings.TrimPrefix(v, "file:")
		st, err := os.Stat(path)
		if err != nil {
			return "", fmt.Errorf("secret file: %w", err)
		}
		if st.Mode().Perm()&0o004 != 0 {
			return "", fmt.Errorf("secret file %s is world-readable (mode %v); chmod o-r it", path, st.Mode().Perm())
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("secret file: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	return v, nil
}
