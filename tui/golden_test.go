package tui

import (
	"fmt"
	"testing"

	"github.com/charmbracelet/colorprofile"
	"github.com/charmbracelet/x/exp/golden"
)

// screens are the goldens: each is reached by keys from the start screen.
// `go test ./tui -update` rewrites them; `make screenshots` turns some of
// them into the README's PNGs.
var screens = []struct {
	name string
	opt  Options
	keys []string
	text string // typed after the keys
}{
	{name: "table"},
	{name: "detail", keys: []string{"j", "enter"}},
	{name: "detail_v3", keys: []string{"G", "enter"}},
	{name: "restore", keys: []string{"R"}},
	{name: "restore_confirm", keys: []string{"R", "j", "j", "j", "enter", "enter"}, text: "0badc0de"},
	{name: "validate", keys: []string{"v"}},
	{name: "help", keys: []string{"?"}},
	{name: "logs", keys: []string{"j", "j", "space", "r", "l"}},
	{name: "logs_focused", keys: []string{"j", "j", "space", "r", "l", "tab", "right"}},
	{name: "filter", keys: []string{"/"}, text: "abc"},
	{name: "command", keys: []string{":"}, text: "bucket saas-backups-eu"},
	{name: "readonly", opt: Options{ReadOnly: true}},
	{name: "nocolor", opt: Options{Color: false}},
}

func TestGolden(t *testing.T) {
	for _, sc := range screens {
		for _, size := range [][2]int{{120, 36}, {80, 24}} {
			t.Run(fmt.Sprintf("%s_%dx%d", sc.name, size[0], size[1]), func(t *testing.T) {
				opt := sc.opt
				if sc.name != "nocolor" {
					opt.Color = true
				}
				d := newDriver(t, newFake(), size[0], size[1], opt)
				d.press(sc.keys...)
				d.typeText(sc.text)
				profile := colorprofile.ANSI256
				if !opt.Color {
					profile = colorprofile.Ascii
				}
				out := render(d.m.View().Content, profile)
				checkFrame(t, out, size[0], size[1])
				golden.RequireEqual(t, out)
			})
		}
	}
}
