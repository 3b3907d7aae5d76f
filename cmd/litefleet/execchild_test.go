package main

import (
	"database/sql"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/internal/testpeer"
)

// The test binary is also the application that replicate -exec runs,
// when these are set: appMode says what it does, appDB on which file.
const (
	appMode = "LITEFLEET_TEST_EXEC_APP"
	appDB   = "LITEFLEET_TEST_EXEC_DB"
)

// execTestApp runs the application and exits, when the process is one:
//   - "exit3" commits rows 100-119 and exits 3;
//   - "term7" commits rows 100-109, says "app: ready", and at SIGTERM
//     commits row 999, says how many signals it got, and exits 7.
func execTestApp() {
	mode := os.Getenv(appMode)
	if mode == "" {
		return
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	db, err := sql.Open("sqlite", "file:"+os.Getenv(appDB)+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(wal)")
	if err != nil {
		fmt.Fprintln(os.Stderr, "app:", err)
		os.Exit(100)
	}
	db.SetMaxOpenConns(1)
	insert := func(from, n int) {
		for i := from; i < from+n; i++ {
			if _, err := db.Exec(`INSERT INTO t (id, val) VALUES (?, ?)`, i, fmt.Sprintf("app-row-%d", i)); err != nil {
				fmt.Fprintln(os.Stderr, "app:", err)
				os.Exit(101)
			}
		}
	}
	switch mode {
	case "exit3":
		insert(100, 20)
		db.Close()
		os.Exit(3)
	case "term7":
		insert(100, 10)
		fmt.Println("app: ready")
		<-sigs
		// Any second copy of the signal arrives meanwhile.
		time.Sleep(300 * time.Millisecond)
		insert(999, 1)
		db.Close()
		fmt.Printf("app: signals %d\n", 1+len(sigs))
		os.Exit(7)
	}
	os.Exit(102)
}

// replicate -exec runs the application while its database replicates:
// when it exits by itself, or at a SIGTERM forwarded to it once, every
// row it committed is in S3 (the final sync), and replicate exits with
// its code (issue 20 item 3).
func TestReplicateExec(t *testing.T) {
	testpeer.Integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	execLine := shellQuote(self) + " -test.run=^$"

	for _, tc := range []struct {
		mode, tenant string
		signal       bool
		code         int
		say          string
	}{
		{"exit3", guid1, false, 3, "application exited: final sync: code=3"},
		{"term7", guid2, true, 7, "app: signals 1"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), tc.tenant+".db")
			testpeer.NewDB(t, path, 5)
			env := append(testpeer.CredEnv(srv), appMode+"="+tc.mode, appDB+"="+path)
			p := startLitefleet(t, env, replicateArgs(srv, conn, "-dsn", path, "-host", "exec-"+tc.mode, "-exec", execLine)...)
			if tc.signal {
				// At once: the final sync must carry what is not yet uploaded.
				p.WaitFor("app: ready", 30*time.Second)
				p.Signal(syscall.SIGTERM)
			}
			if code := p.Wait(60 * time.Second); code != tc.code {
				t.Fatalf("replicate -exec exit %d, want %d:\n%s", code, tc.code, p.Out.String())
			}
			if out := p.Out.String(); !strings.Contains(out, tc.say) || !strings.Contains(out, "stopped cleanly") {
				t.Fatalf("output lacks %q or the final sync:\n%s", tc.say, out)
			}
			want := testpeer.Rows(t, path)
			restored := filepath.Join(t.TempDir(), "restored.db")
			testpeer.Restore(t, srv, conn, tc.tenant, restored)
			testpeer.SameRows(t, testpeer.Rows(t, restored), want)
			if tc.signal && !strings.HasPrefix(want[len(want)-1], "999=") {
				t.Fatal("the row committed at SIGTERM is not in the file")
			}
		})
	}
}
