package enforce

import (
	"os"
	"testing"

	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// TestMain removes the containers internal/testenv started for this package's tests, if any.
func TestMain(m *testing.M) { os.Exit(testenv.Run(m)) }
