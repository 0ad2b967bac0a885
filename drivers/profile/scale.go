package profile

import (
	"fmt"
	"math"
	"strconv"

	"gopkg.in/yaml.v3"
)

// UnmarshalYAML accepts `scale: 0.1` (a factor) or a mapping with exactly
// one of pow10, pow2, sf, factor. It never calls node.Decode on the mapping
// (which would lose KnownFields): keys are checked here. Errors are
// *yaml.TypeError so that decoding goes on and every problem is reported.
func (s *Scale) UnmarshalYAML(n *yaml.Node) error {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	// "[col C]" lets the loader name the exact key in flow style.
	at := func(n *yaml.Node) string { return fmt.Sprintf("line %d: [col %d] ", n.Line, n.Column) }
	bad := func(format string, args ...any) error {
		return &yaml.TypeError{Errors: []string{at(n) + fmt.Sprintf(format, args...)}}
	}
	*s = Scale{}
	switch n.Kind {
	case yaml.ScalarNode:
		f, err := parseFloat(n)
		if err != nil {
			return bad("%q is not a number; write 0.1, {pow10: -1}, {pow2: -9}, {sf: NAME} or {factor: 0.1}", n.Value)
		}
		s.Factor = &f
		return nil
	case yaml.MappingNode:
	default:
		return bad("must be a number or a mapping with one of pow10, pow2, sf, factor")
	}
	var errs []string
	set := 0
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		set++
		switch k.Value {
		case "pow10", "pow2":
			x, err := strconv.Atoi(v.Value)
			if v.Kind != yaml.ScalarNode || err != nil {
				errs = append(errs, at(k)+fmt.Sprintf("%q is not an integer", v.Value))
				continue
			}
			if k.Value == "pow10" {
				s.Pow10 = &x
			} else {
				s.Pow2 = &x
			}
		case "factor":
			f, err := parseFloat(v)
			if err != nil {
				errs = append(errs, at(k)+fmt.Sprintf("%q is not a number", v.Value))
				continue
			}
			s.Factor = &f
		case "sf":
			if v.Kind != yaml.ScalarNode || v.Value == "" {
				errs = append(errs, at(k)+"must name a scale_factors entry")
				continue
			}
			s.SF = v.Value
		default:
			set--
			errs = append(errs, at(k)+"unknown key (want one of pow10, pow2, sf, factor)")
		}
	}
	if set != 1 && len(errs) == 0 {
		errs = append(errs, at(n)+fmt.Sprintf("give exactly one of pow10, pow2, sf, factor (got %d)", set))
	}
	if len(errs) > 0 {
		return &yaml.TypeError{Errors: errs}
	}
	return nil
}

func parseFloat(n *yaml.Node) (float64, error) {
	if n.Kind != yaml.ScalarNode {
		return 0, fmt.Errorf("not a scalar")
	}
	var f float64
	if err := n.Decode(&f); err != nil {
		return 0, err
	}
	return f, nil
}

// MarshalYAML writes the form the scale was written in.
func (s Scale) MarshalYAML() (any, error) {
	switch {
	case s.Pow10 != nil:
		return map[string]int{"pow10": *s.Pow10}, nil
	case s.Pow2 != nil:
		return map[string]int{"pow2": *s.Pow2}, nil
	case s.SF != "":
		return map[string]string{"sf": s.SF}, nil
	case s.Factor != nil:
		return *s.Factor, nil
	}
	return nil, nil
}

// Const returns the scale's multiplier when it is a constant (factor, pow10,
// pow2); ok is false for a scale-factor register ({sf: NAME}). A nil scale is
// the constant 1.
func (s *Scale) Const() (f float64, ok bool) {
	switch {
	case s == nil:
		return 1, true
	case s.Factor != nil:
		return *s.Factor, true
	case s.Pow10 != nil:
		return math.Pow10(*s.Pow10), true
	case s.Pow2 != nil:
		return math.Ldexp(1, *s.Pow2), true
	}
	return 0, false
}

// String renders the scale for messages: "0.1", "10^-1", "2^-9", "sf:V_SF".
func (s *Scale) String() string {
	switch {
	case s == nil:
		return "1"
	case s.Factor != nil:
		return strconv.FormatFloat(*s.Factor, 'g', -1, 64)
	case s.Pow10 != nil:
		return "10^" + strconv.Itoa(*s.Pow10)
	case s.Pow2 != nil:
		return "2^" + strconv.Itoa(*s.Pow2)
	case s.SF != "":
		return "sf:" + s.SF
	}
	return "(empty)"
}
