package main

import "testing"

func TestParseRate(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "2000000": 2_000_000, "5MB": 5_000_000, "500kb": 500_000, "1.5MiB": 1_572_864, "8 MB/s": 8_000_000, "64KiB/s": 65_536, "1g": 1e9,
	} {
		if got, err := parseRate(in); err != nil || got != want {
			t.Errorf("parseRate(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "fast", "-1MB", "5 furlongs", "0.1", "1e300", "NaN"} {
		if got, err := parseRate(in); err == nil {
			t.Errorf("parseRate(%q) = %d, want an error", in, got)
		}
	}
}
