package profile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Set is a loaded, validated collection of profiles indexed by id. It is
// read-only after Load and safe for concurrent use.
type Set struct {
	byID map[string]*Profile
}

// Get returns the profile with id.
func (s *Set) Get(id string) (*Profile, bool) {
	if s == nil {
		return nil, false
	}
	p, ok := s.byID[id]
	return p, ok
}

// All returns every profile, sorted by id.
func (s *Set) All() []*Profile {
	if s == nil {
		return nil
	}
	out := make([]*Profile, 0, len(s.byID))
	for _, p := range s.byID {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Len returns the number of profiles.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.byID)
}

// isProfileFile reports whether name is a profile file (.yaml or .yml).
func isProfileFile(name string) bool {
	ext := path.Ext(name)
	return ext == ".yaml" || ext == ".yml"
}

// Load parses and validates every *.yaml / *.yml file of every source (walked
// recursively). A later source overrides an earlier one's profile of the same
// id, which is logged, so that a site's profiles_dir can replace a built-in
// profile; two files with one id inside a single source are an error. Every
// problem of every file is reported, one per line, as file:line: key: what.
// File names in messages are relative to their source.
func Load(log *slog.Logger, sources ...fs.FS) (*Set, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	set := &Set{byID: map[string]*Profile{}}
	var errs []error
	for si, src := range sources {
		if src == nil {
			continue
		}
		seen := map[string]string{} // id -> file, within this source
		err := fs.WalkDir(src, ".", func(name string, d fs.DirEntry, err error) error {
			if err != nil {
				return fmt.Errorf("walk profile source %d at %s: %w", si, name, err)
			}
			if d.IsDir() || !isProfileFile(name) {
				return nil
			}
			data, err := fs.ReadFile(src, name)
			if err != nil {
				errs = append(errs, fmt.Errorf("read profile %s: %w", name, err))
				return nil
			}
			p, err := Parse(name, data)
			if err != nil {
				errs = append(errs, err)
				return nil
			}
			if prev, dup := seen[p.ID]; dup {
				errs = append(errs, Problem{File: name, Line: p.KeyLine("id"), Key: "id",
					Msg: fmt.Sprintf("profile %q is also defined in %s", p.ID, prev)})
				return nil
			}
			seen[p.ID] = name
			if old, ok := set.byID[p.ID]; ok {
				log.Info("profile overridden", "id", p.ID, "file", name, "source", si, "replaces", old.File)
			}
			set.byID[p.ID] = p
			return nil
		})
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return set, nil
}

// LoadFile reads, parses and validates one profile file.
func LoadFile(file string) (*Profile, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read profile: %w", err)
	}
	return Parse(file, data)
}

// Parse decodes and validates one profile; file names it in messages. Unknown
// keys, type mismatches and every validation problem are reported together
// (errors joined, each a Problem).
func Parse(file string, data []byte) (*Profile, error) {
	ps := &Problems{File: file}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		addYAMLErr(ps, err, nil)
		return nil, ps.Err()
	}
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		line := 0
		if len(root.Content) > 0 {
			line = root.Content[0].Line
		}
		ps.Add(line, "", "a profile must be a YAML mapping (id, vendor, model, ...)")
		return nil, ps.Err()
	}
	w := &walker{lines: map[string]int{}, keyPos: map[[2]int]string{}, vals: map[lineVal]string{}, ps: ps,
		fields: map[reflect.Type]map[string]reflect.Type{}}
	w.walk(root.Content[0], reflect.TypeFor[Profile](), "")
	w.lines[""] = root.Content[0].Line

	p := &Profile{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	// Unknown keys were reported with their key path by the walk;
	// KnownFields still guards against anything the walk missed.
	dec.KnownFields(true)
	if err := dec.Decode(p); err != nil && !errors.Is(err, io.EOF) {
		addYAMLErr(ps, err, w)
	}
	p.File = file
	p.lines = w.lines
	setLines(p)
	// Validate even a partly decoded profile so that one lint run shows
	// everything, but drop what repeats a key already reported.
	decoded := len(ps.List)
	vps := &Problems{File: file}
	validate(p, vps)
	for _, pr := range vps.List {
		if !coveredBy(pr.Key, ps.List[:decoded]) {
			ps.List = append(ps.List, pr)
		}
	}
	if len(ps.List) > 0 {
		return nil, ps.Err()
	}
	return p, nil
}

// coveredBy reports whether key, or a parent or child of it, already has a
// problem in list.
func coveredBy(key string, list []Problem) bool {
	for _, pr := range list {
		if pr.Key == "" {
			continue
		}
		if key == pr.Key || strings.HasPrefix(key, pr.Key+".") || strings.HasPrefix(key, pr.Key+"[") ||
			strings.HasPrefix(pr.Key, key+".") {
			return true
		}
	}
	return false
}

// KeyLine returns the YAML line of key path ("points[3].scale",
// "sunspec.models[1].blocks[0]"), or of its nearest present parent, or the
// document's first line (0 for a profile not made by Parse).
func (p *Profile) KeyLine(key string) int {
	for k := key; k != ""; {
		if l, ok := p.lines[k]; ok {
			return l
		}
		i := strings.LastIndexAny(k, ".[")
		if i < 0 {
			break
		}
		k = k[:i]
	}
	return p.lines[""] // the document's first line, for missing top-level keys
}

var (
	yamlLineRE = regexp.MustCompile(`^line (\d+): (?:\[col (\d+)\] )?(.*)$`)
	yamlValRE  = regexp.MustCompile("cannot unmarshal !!\\w+ `([^`]*)`")
)

// addYAMLErr turns yaml.v3's "line N: msg" errors into problems, naming the
// key: by column for our own "[col C]" errors, else by the offending value
// on that line, else the deepest key on that line.
func addYAMLErr(ps *Problems, err error, w *walker) {
	var te *yaml.TypeError
	var msgs []string
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	for _, m := range msgs {
		m = strings.TrimPrefix(m, "yaml: ")
		sm := yamlLineRE.FindStringSubmatch(m)
		if sm == nil {
			ps.Add(0, "", "%s", m)
			continue
		}
		n, _ := strconv.Atoi(sm[1])
		msg := sm[3]
		// The walk reports unknown keys with their path; skip yaml's copy.
		if strings.Contains(msg, " not found in type ") {
			continue
		}
		if w == nil {
			ps.Add(n, "", "%s", msg)
			continue
		}
		key := ""
		if sm[2] != "" {
			c, _ := strconv.Atoi(sm[2])
			key = w.keyPos[[2]int{n, c}]
		}
		if key == "" {
			if vm := yamlValRE.FindStringSubmatch(msg); vm != nil {
				key = w.vals[lineVal{n, vm[1]}]
			}
		}
		if key == "" {
			key = keyAtLine(w.lines, n)
		}
		ps.Add(n, key, "%s", msg)
	}
}

// keyAtLine returns the deepest key path that starts on line n.
func keyAtLine(lines map[string]int, n int) string {
	best := ""
	for k, l := range lines {
		if l == n && (len(k) > len(best) || len(k) == len(best) && k < best) {
			best = k
		}
	}
	return best
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// walker records where every key path is and reports unknown keys.
type walker struct {
	lines  map[string]int    // key path -> line
	keyPos map[[2]int]string // (line, column) of a key -> key path
	vals   map[lineVal]string
	ps     *Problems
	fields map[reflect.Type]map[string]reflect.Type // yamlFields, cached
}

// lineVal locates a scalar value by line and text, to name the key of a
// type error in flow style ({a: 1, b: x} on one line).
type lineVal struct {
	line int
	val  string
}

// walk records the line of every key path under n and reports keys that t
// does not have. It follows the yaml tags of t (inline structs included);
// under types with their own UnmarshalYAML it records keys unchecked.
func (w *walker) walk(n *yaml.Node, t reflect.Type, keyPath string) {
	// Aliased content was walked where its anchor is; following aliases
	// would make nested aliases ("billion laughs") exponential.
	if n.Kind == yaml.AliasNode {
		return
	}
	if pos := [2]int{n.Line, n.Column}; keyPath != "" && w.keyPos[pos] == "" {
		w.keyPos[pos] = keyPath
	}
	if n.Kind == yaml.ScalarNode {
		w.vals[lineVal{n.Line, n.Value}] = keyPath
		return
	}
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t != nil && reflect.PointerTo(t).Implements(unmarshalerType) {
		t = nil // the type checks its own keys
	}
	kind := reflect.Invalid
	if t != nil {
		kind = t.Kind()
	}
	switch n.Kind {
	case yaml.MappingNode:
		var fields map[string]reflect.Type
		if kind == reflect.Struct {
			if fields = w.fields[t]; fields == nil {
				fields = yamlFields(t)
				w.fields[t] = fields
			}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			kp := joinKey(keyPath, k.Value)
			if _, dup := w.lines[kp]; !dup {
				w.lines[kp] = k.Line
			}
			w.keyPos[[2]int{k.Line, k.Column}] = kp
			var ct reflect.Type
			switch kind {
			case reflect.Struct:
				ft, ok := fields[k.Value]
				if !ok {
					w.ps.Add(k.Line, kp, "unknown key")
					continue
				}
				ct = ft
			case reflect.Map:
				ct = t.Elem()
			}
			w.walk(v, ct, kp)
		}
	case yaml.SequenceNode:
		var et reflect.Type
		if kind == reflect.Slice {
			et = t.Elem()
		}
		for i, c := range n.Content {
			ip := fmt.Sprintf("%s[%d]", keyPath, i)
			w.lines[ip] = c.Line
			w.walk(c, et, ip)
		}
	}
}

func joinKey(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// yamlFields maps the YAML keys of struct t to their field types, following
// ",inline" fields.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	m := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if strings.Contains(","+opts+",", ",inline,") {
			for k, v := range yamlFields(f.Type) {
				m[k] = v
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		m[name] = f.Type
	}
	return m
}

// setLines copies the recorded lines into the Line fields of points, blocks
// and SunSpec models.
func setLines(p *Profile) {
	setScopeLines(p, "", p.Points, p.Blocks)
	if p.SunSpec != nil {
		for i := range p.SunSpec.Models {
			m := &p.SunSpec.Models[i]
			mp := fmt.Sprintf("sunspec.models[%d]", i)
			m.Line = p.lines[mp]
			setScopeLines(p, mp+".", m.Points, m.Blocks)
		}
	}
}

func setScopeLines(p *Profile, prefix string, points []Point, blocks []Block) {
	for i := range points {
		points[i].Line = p.lines[fmt.Sprintf("%spoints[%d]", prefix, i)]
	}
	for i := range blocks {
		bp := fmt.Sprintf("%sblocks[%d]", prefix, i)
		blocks[i].Line = p.lines[bp]
		setScopeLines(p, bp+".", blocks[i].Points, blocks[i].Blocks)
	}
}
