package common

import (
	"strings"

	"github.com/litefleet/litefleet/s3conn"
)

// Flags are the command-line flags that select the fleet of c, for the
// equivalent command lines in the log pane: -config or -bucket, then what
// differs from the defaults. Credentials are never part of them.
func (c Context) Flags(withDirs bool) []string {
	var f []string
	if c.Config != "" {
		f = append(f, "-config", c.Config)
	}
	if c.Bucket != "" {
		f = append(f, "-bucket", c.Bucket)
	}
	if c.Prefix != "" && c.Prefix != s3conn.DefaultPrefix {
		f = append(f, "-prefix", c.Prefix)
	}
	if c.Endpoint != "" {
		f = append(f, "-endpoint", c.Endpoint)
	}
	if c.Region != "" {
		f = append(f, "-region", c.Region)
	}
	if withDirs {
		for _, d := range c.Dirs {
			f = append(f, "-dir", d)
		}
	}
	return f
}

// ConnFlags are Flags without -config: for commands given a -dsn.
func (c Context) ConnFlags() []string {
	d := c
	d.Config = ""
	return d.Flags(false)
}

// CommandLine joins a command's words, quoting each for a POSIX shell when
// it needs it, so the line can be pasted as is.
func CommandLine(words ...string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = ShellQuote(w)
	}
	return strings.Join(q, " ")
}

// ShellQuote quotes s for a POSIX shell when it holds anything but safe
// characters.
func ShellQuote(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=@%+,", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
