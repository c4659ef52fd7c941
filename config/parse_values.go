package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
)

// str reads a string value; set is false for a missing or null value and for
// a value that is not a scalar (an error).
func (d *decoder) str(fields map[string]field, key, path string) (s string, line int, set bool) {
	f, ok := fields[key]
	if !ok || f.value == nil {
		return "", f.line, false
	}
	s, ok = scalarText(f.value)
	if !ok {
		d.errorf(f.line, path, "must be a string, got %s", describe(f.value))
		return "", f.line, false
	}
	return s, f.line, true
}

// nonEmpty reads a string that, when given, must not be empty.
func (d *decoder) nonEmpty(fields map[string]field, key, path, what string) (string, int, bool) {
	s, line, set := d.str(fields, key, path)
	if set && strings.TrimSpace(s) == "" {
		d.errorf(line, path, "must not be empty: %s", what)
		return "", line, false
	}
	return s, line, set
}

// duration reads a duration that, when given, must be > 0. what says what the
// field means when it is ≤ 0 (the text after "must be > 0").
func (d *decoder) duration(fields map[string]field, key, path, what string) (time.Duration, int, bool) {
	f, ok := fields[key]
	if !ok || f.value == nil {
		return 0, f.line, false
	}
	text, ok := scalarText(f.value)
	if !ok {
		d.errorf(f.line, path, "must be a duration such as 500ms, 5s, 1m, 1h30m or 14d, got %s", describe(f.value))
		return 0, f.line, false
	}
	v, err := parseDuration(text)
	if err != nil {
		d.errorf(f.line, path, "must be a duration such as 500ms, 5s, 1m, 1h30m or 14d, got %s", show(text))
		return 0, f.line, false
	}
	if v <= 0 {
		d.errorf(f.line, path, "must be > 0%s, got %s", what, show(text))
		return 0, f.line, false
	}
	return v, f.line, true
}

// requiredDuration is a key of a mapping that must hold a duration > 0,
// where its value goes, and what it is (the text after "required: ").
type requiredDuration struct {
	key, what string
	to        *time.Duration
}

// requiredDurations reads each of keys from fields, the mapping at path
// (f), into its place; false when one is missing (an error: "required:
// <what>") or not a duration > 0 (duration's error).
func (d *decoder) requiredDurations(fields map[string]field, f field, path string, keys ...requiredDuration) bool {
	valid := true
	for _, k := range keys {
		if v, _, ok := d.duration(fields, k.key, path+"."+k.key, ""); ok {
			*k.to = v
			continue
		}
		valid = false
		if kf, given := fields[k.key]; !given || kf.value == nil {
			d.errorf(max(kf.line, f.line), path+"."+k.key, "required: %s", k.what)
		}
	}
	return valid
}

// parseDuration reads Go's duration syntax and also a leading whole number of
// days: "14d", "1d12h".
func parseDuration(s string) (time.Duration, error) {
	rest, neg := s, false
	if len(rest) > 0 && (rest[0] == '-' || rest[0] == '+') {
		neg, rest = rest[0] == '-', rest[1:]
	}
	i := strings.IndexByte(rest, 'd')
	if i <= 0 {
		return time.ParseDuration(s)
	}
	days, err := strconv.ParseUint(rest[:i], 10, 64)
	if err != nil || days > uint64(math.MaxInt64/int64(24*time.Hour)) {
		return 0, fmt.Errorf("bad number of days in %q", s)
	}
	v := time.Duration(days) * 24 * time.Hour
	if tail := rest[i+1:]; tail != "" {
		if tail[0] == '-' || tail[0] == '+' {
			return 0, fmt.Errorf("sign inside %q", s)
		}
		t, err := time.ParseDuration(tail)
		if err != nil {
			return 0, err
		}
		if t > math.MaxInt64-v {
			return 0, fmt.Errorf("%q overflows", s)
		}
		v += t
	}
	if neg {
		v = -v
	}
	return v, nil
}

// size reads a size in bytes that, when given, must be ≥ 0 and fit an int.
// what says what the field means (a parenthesis after the allowed values).
func (d *decoder) size(fields map[string]field, key, path, what string) (int, int, bool) {
	f, ok := fields[key]
	if !ok || f.value == nil {
		return 0, f.line, false
	}
	const notSize = "must be a size such as 1048576, 512KiB, 64MiB or 1GiB%s, got %s"
	text, ok := scalarText(f.value)
	if !ok {
		d.errorf(f.line, path, notSize, what, describe(f.value))
		return 0, f.line, false
	}
	// ParseBigBytes multiplies exactly and never overflows, so that a size
	// too big for an int is told from a bad one; but it reads "1,5GiB" as
	// 15GiB and drops a fraction of a byte, which are refused here.
	n, err := humanize.ParseBigBytes(strings.TrimPrefix(text, "-"))
	switch {
	case err != nil || strings.ContainsRune(text, ','):
		d.errorf(f.line, path, notSize, what, show(text))
	case strings.HasPrefix(text, "-"):
		d.errorf(f.line, path, "must be ≥ 0%s, got %s", what, show(text))
	case strings.ContainsRune(text, '.'):
		d.errorf(f.line, path, "must be a whole number of bytes or of a unit, e.g. 1536MiB rather than 1.5GiB, got %s", show(text))
	case !n.IsInt64() || n.Int64() > math.MaxInt:
		d.errorf(f.line, path, "must be at most %d bytes, got %s", math.MaxInt, show(text))
	default:
		return int(n.Int64()), f.line, true
	}
	return 0, f.line, false
}
