package policy

import (
	"strings"
	"testing"

	"github.com/litefleet/litefleet/tenants"
)

// TestConfinable: a policy is refused for any database validate would
// flag (invalid, fallback, or two on one prefix), naming the first with
// its config line and counting the rest; GUIDs and explicit names pass.
func TestConfinable(t *testing.T) {
	entry := func(path, explicit string) tenants.Entry {
		return tenants.Entry{Path: path, Naming: tenants.NameFor(path, explicit)}
	}
	if err := Confinable([]tenants.Entry{entry("/d/"+guidA+".db", ""), entry("/d/x.db", "legacy-1")}, nil, ""); err != nil {
		t.Fatalf("good names refused: %v", err)
	}
	for _, c := range []struct {
		name    string
		entries []tenants.Entry
		want    []string
	}{
		{"fallback", []tenants.Entry{entry("/d/app.db", "")}, []string{"/d/app.db: no tenant name", "no policy written"}},
		{"invalid", []tenants.Entry{entry("/d/x.db", "Bad Name")}, []string{"/d/x.db: ", "no policy written"}},
		{"collision", []tenants.Entry{entry("/a/x.db", "same"), entry("/b/x.db", "same")}, []string{"file.yml: line 3: /a/x.db", "(and 1 more: litefleet validate lists them)"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := Confinable(c.entries, []int{3, 4}, "file.yml")
			if err == nil {
				t.Fatal("no refusal")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("not one line: %q", err)
			}
		})
	}
}
