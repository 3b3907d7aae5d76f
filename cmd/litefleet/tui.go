package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/term"

	"github.com/litefleet/litefleet/logline"
	"github.com/litefleet/litefleet/replication"
	"github.com/litefleet/litefleet/tui"
	"github.com/litefleet/litefleet/tui/components/logpane"
)

const tuiHelp = `Usage:
  litefleet [tui] [-dir DIR]... [-bucket NAME] [-config FILE] [-readonly] [-refresh 5s] [flags]

Opens the terminal UI over the fleet: every tenant's local database beside
its S3 prefix, with status and lag, refreshed every -refresh. Keys: enter a
tenant's restore points, r/x start and stop replicating it in this process,
R restore, v check names, / filter, s sort (S reverses), : command (:bucket,
:prefix, :host, :q), l log pane, ? every key; the mouse clicks and scrolls.
Quitting stops what it replicates with a final sync. -dir without a bucket
shows the local side alone (S3 not configured).

-readonly hides and refuses every action that writes (replicate, stop,
restore). NO_COLOR is honoured. Closing the terminal (SIGHUP, or a read of
it that fails) stops the UI as q does: what it replicates gets a final sync.

Examples:
  litefleet -dir /data -bucket saas-backups
  litefleet -config litestream.yml -readonly
`

// noFleetHint is printed under the usage when litefleet has nothing to
// open the terminal UI on.
const noFleetHint = "litefleet: give -bucket NAME, -dir DIR or -config FILE to open the terminal UI on a fleet"

func runTUI(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("tui", tuiHelp, stderr)
	var ff fleetFlags
	ff.register(fs)
	readOnly := fs.Bool("readonly", false, "hide and refuse every action that writes: replicate, stop, restore")
	refresh := fs.Duration("refresh", tui.DefaultRefresh, "auto-refresh interval; 0 turns it off")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return errUsage("the terminal UI takes flags only, got %q: did you mean -dir %s?", fs.Arg(0), fs.Arg(0))
	}
	if ff.bucket == "" && len(ff.dirs) == 0 && ff.config == "" {
		fmt.Fprint(stderr, usage)
		fmt.Fprintln(stderr)
		fmt.Fprintln(stderr, noFleetHint)
		return &exitError{code: 2}
	}
	fl, err := ff.newFleet(ctx)
	if err != nil {
		return err
	}

	// Every log line goes to the log pane: on the terminal it would tear
	// the screen. The logger is passed, never made the process's default:
	// the engine hands it (LibLogger) to every Litestream DB, replica and
	// store it makes; what Litestream logs through slog.Default elsewhere
	// (a v0.3 restore's replica, with no DB) is at Debug level, below the
	// default handler's.
	sink := logpane.NewSink()
	h := logline.NewLineHandler(sink, slog.LevelInfo)
	logger := slog.New(h)
	rf := replicateFlags{cf: ff.connFlags, dirs: ff.dirs, recursive: ff.recursive, rescan: 30 * time.Second, sleepAfter: time.Minute}
	if fl.Conn.Bucket == "" {
		// -dir without a bucket: the local side alone, S3 "not
		// configured". There is nowhere to replicate to, so the engine
		// gets no folders (r says "no bucket"), rather than the UI
		// refusing to open.
		rf.dirs = nil
	}
	src, err := rf.source(true)
	if err != nil {
		return err
	}
	eng, err := replication.New(replication.Options{Logger: logger, LibLogger: slog.New(logline.QuietInfo(h)), Version: version}, src)
	if err != nil {
		return err
	}
	if err := eng.Start(ctx); err != nil {
		return err
	}

	backend := tui.NewFleetBackend(fl, eng, tui.FleetOptions{NoCache: ff.noCache, Config: ff.config, Dirs: ff.dirs})
	m := tui.New(backend, tui.Options{
		ReadOnly: *readOnly,
		Refresh:  *refresh,
		Color:    os.Getenv("NO_COLOR") == "",
		Logs:     sink,
	})
	opts := []tea.ProgramOption{tea.WithFilter(tui.Filter), tea.WithOutput(stdout)}
	var gone <-chan struct{} // stays nil, never ready, without a terminal to watch
	if term.IsTerminal(os.Stdin.Fd()) {
		in := newTTYInput(os.Stdin)
		opts = append(opts, tea.WithInput(in))
		gone = in.Gone()
	}
	p := tea.NewProgram(m, opts...)
	// Bubble Tea turns SIGINT and SIGTERM into a clean quit. SIGHUP, or a
	// read of the terminal that fails, means the terminal is gone and no
	// one can answer the UI: stop it now; the replications it started get
	// their final sync below.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	ran := make(chan struct{})
	go func() {
		select {
		case <-hup:
			p.Kill()
		case <-gone:
			p.Kill()
		case <-ran:
		}
	}()
	_, runErr := p.Run()
	close(ran)

	// The UI stops its replications before quitting; after a crash or a
	// second signal it may not have: stop them now, with a final sync.
	closeCtx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	closeErr := backend.Close(closeCtx)
	switch {
	case runErr != nil && !errors.Is(runErr, tea.ErrInterrupted) && !errors.Is(runErr, tea.ErrProgramKilled):
		return fmt.Errorf("terminal UI: %w", runErr)
	case closeErr != nil:
		return fmt.Errorf("stopping replication: %w", closeErr)
	}
	return nil
}
