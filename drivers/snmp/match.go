package snmp

import (
	"fmt"
	"regexp"
)

// matchRE matches a profile's case-insensitive regular expression.
func matchRE(re, v string) (bool, error) {
	r, err := regexp.Compile("(?i)" + re)
	if err != nil {
		return false, fmt.Errorf("match %q: %w", re, err)
	}
	return r.MatchString(v), nil
}
