package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestProcessStopsWhileLoadingConfig starts `run` on a config that never
// finishes loading (a FIFO whose writer sends half a file and then
// nothing), sends SIGTERM, and checks that the host exits at once with the
// interrupted code. The signal handler is installed before the config is
// read, so before the fix the signal was caught and then ignored until
// the load ended, which here is never.
func TestProcessStopsWhileLoadingConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "pycomms.yaml")
	if err := syscall.Mkfifo(cfg, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	cmd := exec.Command(hostBinary(t), "run", "-c", cfg)
	cmd.Dir = dir
	cmd.Env = hostEnv()
	var stderr bytes.Buffer
	cmd.Stderr, cmd.Stdout = &stderr, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})

	// Opening a FIFO for writing without blocking fails (ENXIO) until a
	// reader has it open: once it succeeds, the host is loading its
	// config, well past installing its signal handler.
	var w *os.File
	procEventually(t, 30*time.Second, "the host opens its config", func() error {
		f, err := os.OpenFile(cfg, os.O_WRONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			return err
		}
		w = f
		return nil
	})
	defer w.Close()
	if _, err := w.WriteString("control: \"\"\nplugins:\n"); err != nil {
		t.Fatal(err)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		var ee *exec.ExitError
		if !errors.As(waitErr, &ee) || ee.ExitCode() != exitInterrupted {
			t.Fatalf("host exited with %v, want exit code %d; output:\n%s", waitErr, exitInterrupted, stderr.String())
		}
		if !strings.Contains(stderr.String(), "pycomms-host: interrupted") {
			t.Errorf("output does not say the host was interrupted:\n%s", stderr.String())
		}
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		<-exited // the output is complete once Wait returns
		t.Fatalf("the host was still loading its config 15s after SIGTERM; output:\n%s", stderr.String())
	}
}
