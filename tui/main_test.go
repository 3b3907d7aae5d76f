package tui

import (
	"fmt"
	"os"
	"testing"

	"github.com/litefleet/litefleet/s3conn"
)

func TestMain(m *testing.M) {
	// As main does: Litestream's S3 client fails with AWS_CA_BUNDLE set.
	if _, err := s3conn.AdoptCABundle(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}
