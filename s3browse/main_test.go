package s3browse_test

import (
	"os"
	"testing"

	"github.com/litefleet/litefleet/internal/s3test"
)

func TestMain(m *testing.M) { os.Exit(s3test.Main(m)) }
