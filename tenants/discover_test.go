package tenants

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/benbjohnson/litestream"
	"github.com/benbjohnson/litestream/file"
	"github.com/superfly/ltx"

	"github.com/litefleet/litefleet/internal/testpeer"
	"github.com/litefleet/litefleet/layout"
)

const (
	g1 = "12345678-1234-5678-9abc-123456789012"
	g2 = "9f0c2a4e-7b1d-4c3e-8a5f-0d6e1b2c3a4f"
	g3 = "00000000-0000-4000-8000-000000000003"
	g4 = "00000000-0000-4000-8000-000000000004"
	g5 = "00000000-0000-4000-8000-000000000005"
)

// sqlitePage is a first page as far as discovery looks: SQLite's magic string.
var sqlitePage = sqliteMagic + strings.Repeat("\x00", 4096-len(sqliteMagic))

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// encodeLTX returns a valid single-page LTX file for the TXID range.
func encodeLTX(t testing.TB, minTXID, maxTXID uint64, ts time.Time) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc, err := ltx.NewEncoder(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if err := enc.EncodeHeader(ltx.Header{
		Version:   ltx.Version,
		Flags:     ltx.HeaderFlagNoChecksum,
		PageSize:  4096,
		Commit:    1,
		MinTXID:   ltx.TXID(minTXID),
		MaxTXID:   ltx.TXID(maxTXID),
		Timestamp: ts.UnixMilli(),
	}); err != nil {
		t.Fatal(err)
	}
	if err := enc.EncodePage(ltx.PageHeader{Pgno: 1}, []byte(sqlitePage)); err != nil {
		t.Fatal(err)
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func l0Path(db string, minTXID, maxTXID uint64) string {
	return filepath.Join(layout.LitestreamStateDir(db), "ltx", "0", ltx.FormatFilename(ltx.TXID(minTXID), ltx.TXID(maxTXID)))
}

func TestDiscoverNaming(t *testing.T) {
	upper := strings.ToUpper(g1)
	type want struct {
		rel     string
		name    string
		verdict Verdict
	}
	tests := []struct {
		name      string
		files     map[string]string // relative path → content
		links     map[string]string // relative link → relative target
		dirs      []string          // relative; nil means the root
		recursive bool
		names     map[string]string // relative path → explicit name
		want      []want
	}{
		{
			name:  "GUID from the file name",
			files: map[string]string{g1 + ".db": sqlitePage},
			want:  []want{{g1 + ".db", g1, VerdictGUID}},
		},
		{
			name:  "explicit name from Names",
			files: map[string]string{"legacy-client.db": sqlitePage},
			names: map[string]string{"legacy-client.db": "legacy-001"},
			want:  []want{{"legacy-client.db", "legacy-001", VerdictExplicit}},
		},
		{
			name:  "explicit name keyed through a symlinked folder",
			files: map[string]string{"data/legacy-client.db": sqlitePage},
			links: map[string]string{"alias": "data"},
			dirs:  []string{"data"},
			names: map[string]string{"alias/legacy-client.db": "legacy-001"},
			want:  []want{{"data/legacy-client.db", "legacy-001", VerdictExplicit}},
		},
		{
			name:  "fallback default",
			files: map[string]string{"app.db": sqlitePage},
			want:  []want{{"app.db", FallbackName, VerdictFallback}},
		},
		{
			name:  "two fallbacks collide",
			files: map[string]string{"a.db": sqlitePage, "b.sqlite": ""},
			want: []want{
				{"a.db", FallbackName, VerdictCollision},
				{"b.sqlite", FallbackName, VerdictCollision},
			},
		},
		{
			name:      "same GUID in two folders",
			files:     map[string]string{"a/" + g1 + ".db": sqlitePage, "b/" + g1 + ".db": sqlitePage},
			recursive: true,
			want: []want{
				{"a/" + g1 + ".db", g1, VerdictCollision},
				{"b/" + g1 + ".db", g1, VerdictCollision},
			},
		},
		{
			name:      "GUIDs differing only in case",
			files:     map[string]string{"a/" + upper + ".db": sqlitePage, "b/" + g1 + ".db": sqlitePage},
			recursive: true,
			want: []want{
				{"a/" + upper + ".db", upper, VerdictCollision},
				{"b/" + g1 + ".db", g1, VerdictCollision},
			},
		},
		{
			name: "suffixes, and what is skipped",
			files: map[string]string{
				g1 + ".db":                             sqlitePage,
				g1 + ".db-wal":                         "wal",
				g1 + ".db-shm":                         "shm",
				g2 + ".sqlite":                         sqlitePage,
				g2 + ".sqlite-journal":                 "journal",
				g3 + ".sqlite3":                        sqlitePage,
				g4 + ".DB":                             sqlitePage,
				"." + g1 + ".db-litestream/ltx/0/x.db": sqlitePage,
				".hidden/" + g5 + ".db":                sqlitePage,
				"sub/.hidden/" + g5 + ".db":            sqlitePage,
				"notes.txt":                            "not a database",
				"folder.db/inner.txt":                  "a folder named like a database",
			},
			recursive: true,
			want: []want{
				{g3 + ".sqlite3", g3, VerdictGUID},
				{g4 + ".DB", g4, VerdictGUID},
				{g1 + ".db", g1, VerdictGUID},
				{g2 + ".sqlite", g2, VerdictGUID},
			},
		},
		{
			name:  "non-recursive stays in the folder",
			files: map[string]string{g1 + ".db": sqlitePage, "sub/" + g2 + ".db": sqlitePage},
			want:  []want{{g1 + ".db", g1, VerdictGUID}},
		},
		{
			name:      "recursive descends",
			files:     map[string]string{g1 + ".db": sqlitePage, "sub/deeper/" + g2 + ".db": sqlitePage},
			recursive: true,
			want: []want{
				{g1 + ".db", g1, VerdictGUID},
				{"sub/deeper/" + g2 + ".db", g2, VerdictGUID},
			},
		},
		{
			name: "not SQLite is reported, empty is a new database",
			files: map[string]string{
				g1 + ".db": "hello, I am a text file pretending",
				g2 + ".db": "SQL",
				g3 + ".db": "",
			},
			want: []want{
				{g3 + ".db", g3, VerdictGUID},
				{g1 + ".db", g1, VerdictInvalid},
				{g2 + ".db", g2, VerdictInvalid},
			},
		},
		{
			name:  "a file in Dirs is one database whatever its extension",
			files: map[string]string{"data/tenant.bin": sqlitePage, "data/" + g1 + ".db": sqlitePage},
			dirs:  []string{"data/tenant.bin"},
			names: map[string]string{"data/tenant.bin": "tenant-1"},
			want:  []want{{"data/tenant.bin", "tenant-1", VerdictExplicit}},
		},
		{
			name:  "a file and its folder in Dirs: found once",
			files: map[string]string{"data/" + g1 + ".db": sqlitePage},
			dirs:  []string{"data/" + g1 + ".db", "data"},
			want:  []want{{"data/" + g1 + ".db", g1, VerdictGUID}},
		},
		{
			name:  "symlink to a file seen directly: the real path wins",
			files: map[string]string{"a/" + g1 + ".db": sqlitePage},
			links: map[string]string{"b/" + g1 + ".db": "a/" + g1 + ".db"},
			dirs:  []string{"b", "a"},
			want:  []want{{"a/" + g1 + ".db", g1, VerdictGUID}},
		},
		{
			name:  "symlink alone keeps its own spelling and name",
			files: map[string]string{"store/current.db": sqlitePage},
			links: map[string]string{"b/" + g2 + ".db": "store/current.db"},
			dirs:  []string{"b"},
			want:  []want{{"b/" + g2 + ".db", g2, VerdictGUID}},
		},
		{
			name:  "same folder through a symlink: found once",
			files: map[string]string{"data/" + g1 + ".db": sqlitePage},
			links: map[string]string{"alias": "data"},
			dirs:  []string{"alias", "data"},
			want:  []want{{"data/" + g1 + ".db", g1, VerdictGUID}},
		},
		{
			name:  "dangling symlink is reported",
			links: map[string]string{g1 + ".db": "gone.db"},
			want:  []want{{g1 + ".db", "", VerdictInvalid}},
		},
		{
			name:      "symlinked subfolders are not followed",
			files:     map[string]string{"data/" + g1 + ".db": sqlitePage},
			links:     map[string]string{"data/loop": "data"},
			dirs:      []string{"data"},
			recursive: true,
			want:      []want{{"data/" + g1 + ".db", g1, VerdictGUID}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			for rel, content := range tt.files {
				writeFile(t, filepath.Join(root, rel), content)
			}
			for rel, target := range tt.links {
				link := filepath.Join(root, rel)
				if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(filepath.Join(root, target), link); err != nil {
					t.Fatal(err)
				}
			}
			opt := DiscoverOptions{Recursive: tt.recursive, Names: map[string]string{}}
			for _, d := range tt.dirs {
				opt.Dirs = append(opt.Dirs, filepath.Join(root, d))
			}
			if tt.dirs == nil {
				opt.Dirs = []string{root}
			}
			for rel, name := range tt.names {
				opt.Names[filepath.Join(root, rel)] = name
			}
			got, err := Discover(context.Background(), opt)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d databases, want %d:\n%s", len(got), len(tt.want), dump(got))
			}
			for i, w := range tt.want {
				g := got[i]
				if g.Path != filepath.Join(root, w.rel) || g.Name != w.name || g.Verdict != w.verdict {
					t.Errorf("[%d] = %s %q %s, want %s %q %s (note %q)", i, g.Path, g.Name, g.Verdict, filepath.Join(root, w.rel), w.name, w.verdict, g.Note)
				}
				if g.Verdict == VerdictCollision && !strings.Contains(g.Note, "also claimed by") {
					t.Errorf("[%d] collision note %q does not name the other path", i, g.Note)
				}
			}
		})
	}
}

func dump(ls []Local) string {
	var b strings.Builder
	for _, l := range ls {
		fmt.Fprintf(&b, "  %s %q %s %s\n", l.Path, l.Name, l.Verdict, l.Note)
	}
	return b.String()
}

func TestDiscoverNotSQLiteNote(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, g1+".db"), "plain text")
	got, err := Discover(context.Background(), DiscoverOptions{Dirs: []string{root}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Note != "not an SQLite database" || got[0].Verdict.Usable() {
		t.Fatalf("got %s", dump(got))
	}
	if got[0].Size != int64(len("plain text")) {
		t.Errorf("Size = %d, want the file's size for display", got[0].Size)
	}
}

func TestDiscoverMissingDir(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	_, err := Discover(context.Background(), DiscoverOptions{Dirs: []string{missing}})
	if err == nil {
		t.Fatal("no error for a missing folder")
	}
	if want := "no such file or folder: " + missing; !strings.HasPrefix(err.Error(), want) || strings.Contains(err.Error(), "-dir") {
		t.Errorf("error %q does not start with %q", err, want)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("error %v is not fs.ErrNotExist", err)
	}
}

func TestDiscoverCanceled(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, g1+".db"), sqlitePage)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Discover(ctx, DiscoverOptions{Dirs: []string{root}}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestDiscoverInUseIsNotOpened(t *testing.T) {
	// Garbage in a file the caller says it holds open proves the header was not read.
	root := t.TempDir()
	path := filepath.Join(root, g1+".db")
	writeFile(t, path, "garbage, but held open by SQLite in this process")
	got, err := Discover(context.Background(), DiscoverOptions{
		Dirs:  []string{root},
		InUse: func(p string) bool { return p == path },
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Verdict != VerdictGUID {
		t.Fatalf("got %s", dump(got))
	}
}

func TestDiscoverSizesAndWAL(t *testing.T) {
	root := t.TempDir()
	db := filepath.Join(root, g1+".db")
	writeFile(t, db, sqlitePage)
	writeFile(t, db+"-wal", strings.Repeat("w", 1000))
	old := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	recent := old.Add(time.Hour)
	if err := os.Chtimes(db, old, old); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(db+"-wal", recent, recent); err != nil {
		t.Fatal(err)
	}
	alone := filepath.Join(root, g2+".db")
	writeFile(t, alone, sqlitePage)
	if err := os.Chtimes(alone, old, old); err != nil {
		t.Fatal(err)
	}

	got, err := Discover(context.Background(), DiscoverOptions{Dirs: []string{root}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %s", dump(got))
	}
	if l := got[0]; l.Size != 4096 || l.WALSize != 1000 || !l.Changed.Equal(recent) || l.TXID != 0 || l.StateErr != "" {
		t.Errorf("with WAL: size %d wal %d changed %v txid %d state %q", l.Size, l.WALSize, l.Changed, l.TXID, l.StateErr)
	}
	if l := got[1]; l.Size != 4096 || l.WALSize != 0 || !l.Changed.Equal(old) {
		t.Errorf("without WAL: size %d wal %d changed %v", l.Size, l.WALSize, l.Changed)
	}
}

func TestDiscoverLocalStateFiles(t *testing.T) {
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		l0       [][2]uint64 // files written, in this order
		extra    map[string]string
		mismatch bool // newest file's header claims another TXID
		wantTXID uint64
		wantErr  string
	}{
		{name: "no state folder"},
		{name: "state folder without ltx/0", extra: map[string]string{"ltx/1/" + ltx.FormatFilename(1, 9): "x"}},
		{
			name:     "several L0 files, listed out of order",
			l0:       [][2]uint64{{4, 4}, {1, 1}, {2, 3}},
			extra:    map[string]string{"ltx/0/0000000000000005-0000000000000005.ltx.tmp": "partial", "ltx/0/README": "x"},
			wantTXID: 4,
		},
		{name: "header disagrees with the name", l0: [][2]uint64{{1, 2}}, mismatch: true, wantTXID: 2, wantErr: "says TXID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			db := filepath.Join(root, g1+".db")
			writeFile(t, db, sqlitePage)
			for _, r := range tt.l0 {
				hdrMax := r[1]
				if tt.mismatch {
					hdrMax++
				}
				writeFile(t, l0Path(db, r[0], r[1]), string(encodeLTX(t, r[0], hdrMax, t0.Add(time.Duration(r[1])*time.Minute))))
				mt := t0.Add(time.Duration(r[1])*time.Minute + time.Second)
				if err := os.Chtimes(l0Path(db, r[0], r[1]), mt, mt); err != nil {
					t.Fatal(err)
				}
			}
			for rel, content := range tt.extra {
				writeFile(t, filepath.Join(layout.LitestreamStateDir(db), rel), content)
			}
			got, err := Discover(context.Background(), DiscoverOptions{Dirs: []string{root}})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 {
				t.Fatalf("got %s", dump(got))
			}
			l := got[0]
			if l.TXID != tt.wantTXID {
				t.Errorf("TXID = %d, want %d", l.TXID, tt.wantTXID)
			}
			if tt.wantErr == "" && l.StateErr != "" || !strings.Contains(l.StateErr, tt.wantErr) {
				t.Errorf("StateErr = %q, want %q", l.StateErr, tt.wantErr)
			}
			if len(l.L0) != len(tt.l0) {
				t.Fatalf("L0 = %v, want %d files", l.L0, len(tt.l0))
			}
			for i := 1; i < len(l.L0); i++ {
				if l.L0[i-1].MinTXID >= l.L0[i].MinTXID {
					t.Errorf("L0 not ascending: %v", l.L0)
				}
			}
			for _, r := range l.L0 {
				if want := t0.Add(time.Duration(r.MaxTXID)*time.Minute + time.Second); !r.ModTime.Equal(want) {
					t.Errorf("L0 %d-%d ModTime %v, want %v", r.MinTXID, r.MaxTXID, r.ModTime, want)
				}
			}
			if tt.wantTXID != 0 && !tt.mismatch {
				if want := t0.Add(time.Duration(tt.wantTXID) * time.Minute); !l.TXIDTime.Equal(want) {
					t.Errorf("TXIDTime = %v, want %v", l.TXIDTime, want)
				}
			}
		})
	}
}

func TestOldestUnreplicated(t *testing.T) {
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	local := Local{
		TXID:     9,
		TXIDTime: at(9).Add(-time.Second), // header time, preferred for the newest file
		L0: []LTXRef{
			{MinTXID: 3, MaxTXID: 3, ModTime: at(3)},
			{MinTXID: 4, MaxTXID: 6, ModTime: at(6)},
			{MinTXID: 7, MaxTXID: 7, ModTime: at(7)},
			{MinTXID: 8, MaxTXID: 9, ModTime: at(9)},
		},
	}
	tests := []struct {
		name   string
		l      Local
		remote uint64
		want   time.Time
		ok     bool
	}{
		{"replica holds everything", local, 9, time.Time{}, false},
		{"replica ahead", local, 12, time.Time{}, false},
		{"behind by the newest file only", local, 7, at(9).Add(-time.Second), true},
		{"inside a multi-TXID file", local, 5, at(6), true},
		{"at a file boundary", local, 6, at(7), true},
		{"behind the oldest local file: a lower bound", local, 0, at(3), true},
		{"never replicated locally", Local{}, 0, time.Time{}, false},
		{"newest without header time", Local{TXID: 2, L0: []LTXRef{{1, 2, at(2)}}}, 1, at(2), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tt.l.OldestUnreplicated(tt.remote)
			if ok != tt.ok || !got.Equal(tt.want) {
				t.Errorf("OldestUnreplicated(%d) = %v, %v; want %v, %v", tt.remote, got, ok, tt.want, tt.ok)
			}
		})
	}
}

// fileState is what Discover must leave untouched on a live database.
type fileState struct {
	names   []string
	content map[string][]byte
	mtime   map[string]time.Time
}

func snapshotFiles(t *testing.T, dir string) fileState {
	t.Helper()
	st := fileState{content: map[string][]byte{}, mtime: map[string]time.Time{}}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		st.names = append(st.names, p)
		if d.Type().IsRegular() && !strings.HasSuffix(p, "-shm") {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			st.content[p], st.mtime[p] = b, fi.ModTime()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestDiscoverLitestreamPosition(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, g1+".db")

	sqldb := testpeer.OpenDB(t, path)

	db := litestream.NewDB(path)
	db.MonitorInterval = 0 // syncs happen when the test says so
	r := litestream.NewReplicaWithClient(db, file.NewReplicaClient(t.TempDir()))
	r.MonitorEnabled = false
	db.Replica = r
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			_ = db.Close(ctx)
		}
	}()

	start := time.Now().Truncate(time.Millisecond)
	testpeer.InsertRows(t, sqldb, 0, 1) // replicated
	if err := db.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	remote := uint64(r.Pos().TXID)

	beforeLocal := time.Now().Truncate(time.Millisecond)
	testpeer.InsertRows(t, sqldb, 1, 1) // local only
	if err := db.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	pos, err := db.Pos()
	if err != nil {
		t.Fatal(err)
	}
	if uint64(pos.TXID) <= remote {
		t.Fatalf("local TXID %d not ahead of replica %d", pos.TXID, remote)
	}

	before := snapshotFiles(t, dir)
	got, err := Discover(ctx, DiscoverOptions{
		Dirs:  []string{dir},
		InUse: func(p string) bool { return p == path }, // as the supervisor would
	})
	if err != nil {
		t.Fatal(err)
	}
	after := snapshotFiles(t, dir)

	if len(got) != 1 {
		t.Fatalf("got %s", dump(got))
	}
	l := got[0]
	if l.Path != path || l.Name != g1 || l.StateErr != "" {
		t.Fatalf("got %s (state %q)", dump(got), l.StateErr)
	}
	if l.TXID != uint64(pos.TXID) {
		t.Errorf("TXID = %d, Litestream says %d", l.TXID, pos.TXID)
	}
	now := time.Now()
	if l.TXIDTime.Before(beforeLocal) || l.TXIDTime.After(now) {
		t.Errorf("TXIDTime %v not within [%v, %v]", l.TXIDTime, beforeLocal, now)
	}
	if l.Size == 0 || l.WALSize == 0 || len(l.L0) == 0 {
		t.Errorf("size %d, wal %d, L0 %v: want all set", l.Size, l.WALSize, l.L0)
	}
	if ts, ok := l.OldestUnreplicated(remote); !ok || ts.Before(beforeLocal) || ts.After(now) {
		t.Errorf("OldestUnreplicated(%d) = %v, %v: want within [%v, %v]", remote, ts, ok, beforeLocal, now)
	}
	if ts, ok := l.OldestUnreplicated(0); !ok || ts.Before(start) || ts.After(beforeLocal) {
		t.Errorf("OldestUnreplicated(0) = %v, %v: want the first sync, within [%v, %v]", ts, ok, start, beforeLocal)
	}
	if _, ok := l.OldestUnreplicated(l.TXID); ok {
		t.Error("OldestUnreplicated(local TXID) reports a lag")
	}

	if strings.Join(before.names, "\n") != strings.Join(after.names, "\n") {
		t.Errorf("files changed during Discover:\nbefore %v\nafter  %v", before.names, after.names)
	}
	for p, b := range before.content {
		if !bytes.Equal(b, after.content[p]) || !before.mtime[p].Equal(after.mtime[p]) {
			t.Errorf("%s changed during Discover", p)
		}
	}

	// Litestream carries on as if Discover had not run.
	testpeer.InsertRows(t, sqldb, 2, 1) // after Discover
	if err := db.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(ctx); err != nil {
		t.Fatal(err)
	}
	closed = true

	// Read the position back the library's own way, from a DB never opened.
	want, err := litestream.NewDB(path).Pos()
	if err != nil {
		t.Fatal(err)
	}
	got, err = Discover(ctx, DiscoverOptions{Dirs: []string{dir}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].TXID != uint64(want.TXID) || got[0].Verdict != VerdictGUID {
		t.Fatalf("after close: got %s TXID %d, Litestream says %d", dump(got), got[0].TXID, want.TXID)
	}
	if _, ok := got[0].OldestUnreplicated(uint64(r.Pos().TXID)); ok {
		t.Error("after a full sync, OldestUnreplicated still reports a lag")
	}
}

// BenchmarkDiscover10k measures one listing of a folder of 10,000 tenants,
// each with a three-file level-0 state and one in ten with a -wal.
func BenchmarkDiscover10k(b *testing.B) {
	const n = 10000
	root := b.TempDir()
	ts := time.Now()
	ltxs := [][]byte{encodeLTX(b, 1, 1, ts), encodeLTX(b, 2, 2, ts), encodeLTX(b, 3, 3, ts)}
	page := []byte(sqlitePage)
	for i := range n {
		db := filepath.Join(root, fmt.Sprintf("%08x-0000-4000-8000-%012x.db", i, i))
		if err := os.WriteFile(db, page, 0o644); err != nil {
			b.Fatal(err)
		}
		if i%10 == 0 {
			if err := os.WriteFile(db+"-wal", page, 0o644); err != nil {
				b.Fatal(err)
			}
		}
		if err := os.MkdirAll(filepath.Dir(l0Path(db, 1, 1)), 0o755); err != nil {
			b.Fatal(err)
		}
		for j, data := range ltxs {
			if err := os.WriteFile(l0Path(db, uint64(j+1), uint64(j+1)), data, 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	ctx := context.Background()
	opt := DiscoverOptions{Dirs: []string{root}}
	// The first listing competes with the writeback of the 50,000 files just
	// created; an operator's folder has long been written.
	if _, err := Discover(ctx, opt); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		got, err := Discover(ctx, opt)
		if err != nil {
			b.Fatal(err)
		}
		if len(got) != n || got[0].TXID != 3 || got[0].Verdict != VerdictGUID {
			b.Fatalf("got %d databases, first %+v", len(got), got[0])
		}
	}
}

// TestDiscoverSkipsRestoredCopies: a restore's output beside a live file
// (NAME.restored-TIME.db) is a copy, not a tenant; listing it would make it
// a fallback "default" tenant and, with two of them, a collision.
func TestDiscoverSkipsRestoredCopies(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, g1+".db"), sqlitePage)
	writeFile(t, filepath.Join(dir, g1+".restored-20261126T212000Z.db"), sqlitePage)
	writeFile(t, filepath.Join(dir, g1+".restored-20261126T213000Z.db"), sqlitePage)
	got, err := Discover(context.Background(), DiscoverOptions{Dirs: []string{dir}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Name != g1 || got[0].Verdict != VerdictGUID {
		t.Fatalf("want only %s, got %+v", g1, got)
	}
}

// TestDiscoverJournalMode: Discover reads the journal mode from the header
// (a WAL database, a rollback-journal one, an empty file) without opening
// the database.
func TestDiscoverJournalMode(t *testing.T) {
	dir := t.TempDir()
	testpeer.NewDB(t, filepath.Join(dir, g1+".db"), 1)
	rollback := filepath.Join(dir, g2+".db")
	header := []byte(sqlitePage)
	header[18], header[19] = 1, 1
	writeFile(t, rollback, string(header))
	writeFile(t, filepath.Join(dir, g3+".db"), "")
	got, err := Discover(context.Background(), DiscoverOptions{Dirs: []string{dir}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{g1: JournalWAL, g2: JournalRollback, g3: ""}
	for _, l := range got {
		if l.Journal != want[l.Name] {
			t.Errorf("%s: journal %q, want %q", l.Name, l.Journal, want[l.Name])
		}
	}
	if mode, err := JournalMode(rollback); err != nil || mode != JournalRollback {
		t.Errorf("JournalMode: %q, %v", mode, err)
	}
	if _, err := JournalMode(filepath.Join(dir, "missing.db")); err == nil {
		t.Error("JournalMode of a missing file: no error")
	}
}
