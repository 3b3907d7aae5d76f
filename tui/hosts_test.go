package tui

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/colorprofile"
	"github.com/charmbracelet/x/exp/golden"

	"github.com/litefleet/litefleet/hostview"
)

// withHosts gives the fixture fleet two replicating hosts: web-1 replicates
// three tenants (one of them diverged), web-2 is silent with one.
func withHosts(f *fakeBackend) *fakeBackend {
	f.hosts = []hostview.HostSummary{
		{Name: "web-1", Age: 3 * time.Second, Tenants: 3},
		{Name: "web-2", Age: 75 * time.Second, Silent: true, Tenants: 1},
	}
	rep := func(tenant, host, state string, local, repl uint64, silent bool) hostview.HostReport {
		r := hostview.HostReport{Tenant: tenant, Host: host, State: state, LocalTXID: local, Replicated: repl, HostAge: 3 * time.Second, Silent: silent}
		if silent {
			r.HostAge = 75 * time.Second
		}
		return r
	}
	f.hostReports = map[string][]hostview.HostReport{
		guidSync:   {rep(guidSync, "web-1", "replicating", 41, 41, false)},
		guidSync2:  {rep(guidSync2, "web-1", "sleeping", 17, 17, false)},
		guidSync3:  {rep(guidSync3, "web-1", "diverged", 9, 9, false)},
		guidRemote: {rep(guidRemote, "web-2", "replicating", 8, 8, true)},
	}
	f.hostReports[guidSync3][0].Reason = "the local file's history differs from the replica's"
	return f
}

// The header counts each host's tenants, a silent one in the alarm colour;
// the table has a HOST column; a diverged tenant says diverged whatever its
// TXIDs, and a silent host's tenant "host silent".
func TestGoldenHosts(t *testing.T) {
	for _, size := range [][2]int{{120, 36}, {80, 24}} {
		t.Run(fmt.Sprintf("table_%dx%d", size[0], size[1]), func(t *testing.T) {
			d := newDriver(t, withHosts(newFake()), size[0], size[1], Options{Color: true})
			out := render(d.m.View().Content, colorprofile.ANSI256)
			checkFrame(t, out, size[0], size[1])
			golden.RequireEqual(t, out)
			d.wantScreen("2 hosts", "web-1 3", "web-2 1 silent 1m", "diverged", "host silent")
			if size[0] == 120 {
				d.wantScreen("HOST")
			}
		})
	}
}

// The detail page names the tenant's host and its state.
func TestDetailShowsHost(t *testing.T) {
	d := newDriver(t, withHosts(newFake()), 120, 36, Options{Color: true})
	d.press("G", "k", "enter") // fedcba98…, diverged on web-1
	d.wantScreen("fedcba98-7654-3210-fedc-ba9876543210", "web-1: diverged · heartbeat 3s ago", "the local file's history differs")
}

func TestHostFilter(t *testing.T) {
	d := newDriver(t, withHosts(newFake()), 120, 36, Options{Color: true})
	d.press(":")
	d.typeText("host web-1")
	d.press("enter")
	d.wantScreen(":host web-1", "3 of 10 tenants")
	for _, g := range []string{guidSync, guidSync2, guidSync3} {
		d.wantScreen(g)
	}
	for _, g := range []string{guidRemote, guidLocal, guidLeased} {
		d.notScreen(g)
	}
	// esc shows every host again.
	d.press("esc")
	d.wantScreen("Tenants 10", guidRemote)

	d.press(":")
	d.typeText("host nobody")
	d.press("enter")
	d.wantScreen("no tenant of host nobody")
	d.press(":")
	d.typeText("host")
	d.press("enter")
	if !strings.Contains(d.plain(), guidLocal) {
		t.Fatalf(":host alone does not show every tenant again:\n%s", d.plain())
	}
}
