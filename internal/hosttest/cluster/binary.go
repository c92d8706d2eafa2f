package cluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	mainCalled bool
	buildOnce  sync.Once
	binDir     string
	binPath    string
	binErr     error
)

// Main runs the package's tests (call it from TestMain: os.Exit(cluster.
// Main(m))) and then removes the pycomms-host binary that Process mode
// builds once per test binary. Process mode refuses to run without it, so
// that no binary is left behind.
func Main(m *testing.M) int {
	mainCalled = true
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	return code
}

// binary builds ./cmd/pycomms-host once (with -race when this test binary
// has it, so the hosts report races too) and returns its path.
func binary() (string, error) {
	if !mainCalled {
		return "", errors.New("cluster: Process mode needs cluster.Main in the package's TestMain (it removes the built binary)")
	}
	buildOnce.Do(func() {
		root, err := repoRoot()
		if err != nil {
			binErr = err
			return
		}
		binDir, binErr = os.MkdirTemp("", "pycomms-cluster-bin-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "pycomms-host")
		args := []string{"build", "-o", binPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, "./cmd/pycomms-host")...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("cluster: go build ./cmd/pycomms-host: %w\n%s", err, out)
		}
	})
	return binPath, binErr
}
