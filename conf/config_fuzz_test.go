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
			if strings.Contains(body, "fuzz-secret-1") && strings.Contains(msg, "fuzz-secret-1") {
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
