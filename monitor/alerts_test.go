package monitor_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/litefleet/litefleet/monitor"
)

// alertsDir holds the alert rules operators load (deploy/prometheus).
var alertsDir = filepath.Join("..", "deploy", "prometheus")

// promtool finds promtool, which Debian's prometheus package brings (CI
// installs it). Without it the rules' own tests cannot run: a failure in
// CI, a skip that says so elsewhere.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool is not installed: CI must install Debian's prometheus package (.ci/run does)")
		}
		t.Skip("promtool is not installed (apt-get install prometheus): the alert rules' tests need it")
	}
	return p
}

// The alert rules parse, and each alert fires on the series that should
// make it fire and only then (alerts_test.yml, promtool's rule tests).
func TestAlertRules(t *testing.T) {
	bin := promtool(t)
	for _, args := range [][]string{{"check", "rules", "alerts.yml"}, {"test", "rules", "alerts_test.yml"}} {
		cmd := exec.Command(bin, args...)
		cmd.Dir = alertsDir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// Every litefleet series an alert reads is one this package exports, with
// the labels the alert groups by: a renamed metric or label would leave
// the alert silent for ever, and promtool's tests, fed by hand-written
// series, cannot see that.
func TestAlertRulesUseExportedSeries(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(alertsDir, "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	// What /metrics declares, and each family's labels, from a scrape.
	_, text := get(t, monitor.NewHandler(fleetOf3(), monitor.Options{Version: "v1", VerifyEvery: time.Hour}), "/metrics")
	labels := map[string][]string{}
	for name, f := range parse(t, text) {
		ls := []string{}
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if !slices.Contains(ls, l.GetName()) {
					ls = append(ls, l.GetName())
				}
			}
		}
		labels[name] = ls
	}
	declared := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^# TYPE (\S+) `).FindAllStringSubmatch(text, -1) {
		declared[m[1]] = true
	}
	metric := regexp.MustCompile(`litefleet_[a-z0-9_]+`)
	// Labels an alert names besides those Prometheus adds (job, instance).
	selector := regexp.MustCompile(`(litefleet_[a-z0-9_]+)(?:\{([^}]*)\})?`)
	n := 0
	for _, g := range doc.Groups {
		for _, r := range g.Rules {
			for _, name := range metric.FindAllString(r.Expr, -1) {
				n++
				if !declared[name] {
					t.Errorf("alert %s reads %s, which /metrics does not export", r.Alert, name)
				}
			}
			for _, m := range selector.FindAllStringSubmatch(r.Expr, -1) {
				for _, matcher := range strings.Split(m[2], ",") {
					l, _, ok := strings.Cut(strings.TrimSpace(matcher), "=")
					l = strings.TrimRight(l, "!~")
					if !ok || l == "job" || l == "instance" {
						continue
					}
					if ls, seen := labels[m[1]]; seen && len(ls) > 0 && !slices.Contains(ls, l) {
						t.Errorf("alert %s selects %s by label %q, which its series do not have (%v)", r.Alert, m[1], l, ls)
					}
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("no litefleet series found in alerts.yml")
	}
}
