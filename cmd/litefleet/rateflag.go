package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// rateFlag is a bandwidth in bytes a second, written as a number with an
// optional unit: 500KB, 8MB, 1.5MiB, 2000000 (bytes), "/s" allowed after
// it. KB and MB are powers of 1,000, KiB and MiB of 1,024; 0 is no cap.
type rateFlag int64

func (r *rateFlag) String() string {
	if r == nil || *r == 0 {
		return "0"
	}
	return strconv.FormatInt(int64(*r), 10)
}

func (r *rateFlag) Set(v string) error {
	n, err := parseRate(v)
	if err != nil {
		return err
	}
	*r = rateFlag(n)
	return nil
}

var rateUnits = []struct {
	suffix string
	scale  float64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"k", 1e3}, {"m", 1e6}, {"g", 1e9}, {"b", 1},
}

func parseRate(v string) (int64, error) {
	s := strings.ToLower(strings.TrimSpace(v))
	s = strings.TrimSuffix(s, "/s")
	scale := 1.0
	for _, u := range rateUnits {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			s, scale = strings.TrimSpace(num), u.scale
			break
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || f < 0 || f*scale > 1<<50 {
		return 0, fmt.Errorf("%q is not a bandwidth: write bytes a second, e.g. 5MB, 500KB or 0 for no cap", v)
	}
	if n := int64(f * scale); n > 0 || f == 0 {
		return n, nil
	}
	return 0, fmt.Errorf("%q is under a byte a second: write e.g. 5MB, or 0 for no cap", v)
}
