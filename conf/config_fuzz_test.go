package conf

import (
	"strings"
	"testing"
)

// FuzzLoadConfig: a config is operator input, but often generated or
// edited by hand. Whatever its bytes, loading either fails with an error
// of one line per problem or gives targets; it never panics, and never prints the secret
// key it was given.
func FuzzLoadConfig(f *testing.F) {
	f.Add("dbs:\n  - path: /x.db\n    replica:\n      bucket: bkt\n      path: databases/t1\n")
	f.Add("access-key-id: AKIA1\nsecret-access-key: fuzz-secret-1\ndbs:\n  - path: /x.db\n    replica: {url: s3://bkt/databases/t2}\n")
	f.Add("dbs:\n  - path: /x.db\n    replicas:\n      - bucket: akt\n      - bucket: bkt\n")
	f.Add("dbs: [\n")
	f.Add("dbs:\n  - path: $LITEFLEET_FUZZ_UNSET\n")
	f.Fuzz(func(t *testing.T, body string) {
		_, targets, err := LoadConfig(writeConfig(t, body))
		if err != nil {
			msg := err.Error()
			// One line per problem: several databases' problems are
			// listed together (errors.Join), each on its own line.
			for _, l := range strings.Split(msg, "\n") {
				if strings.TrimSpace(l) == "" {
					t.Fatalf("an empty line in the error: %q", msg)
				}
			}
			if secretGiven(body) && strings.Contains(msg, "fuzz-secret-1") {
				t.Fatalf("error prints the secret key: %q", msg)
			}
			return
		}
		for _, tg := range targets {
			if tg.Path == "" {
				t.Fatalf("a target without a path from %q", body)
			}
		}
	})
}

// secretGiven reports whether the body gives fuzz-secret-1 as a secret key
// (after secret-access-key on its line). Elsewhere it is no secret: as a
// field's name, an error must name it ("fuzz-secret-1:" made the oracle
// fail in CI with a correct "unknown field" error).
func secretGiven(body string) bool {
	for _, line := range strings.Split(body, "\n") {
		if _, after, ok := strings.Cut(line, "secret-access-key"); ok && strings.Contains(after, "fuzz-secret-1") {
			return true
		}
	}
	return false
}
