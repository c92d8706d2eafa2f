//go:build ignore

// Command mkwasm builds the committed build of a bundled Go plugin
// (DIR/DIR.wasm: echo/echo.wasm, linejson/linejson.wasm). It is what `go
// generate ./plugins/...` runs (see plugins/embed.go), from the plugins
// directory, and what the freshness tests re-run into a temporary
// directory. It is a Go program rather than a shell line so that a fresh
// clone needs nothing but Go, on any OS.
//
// Usage, from the plugins directory:
//
//	go run ./mkwasm.go [-o OUT] DIR
//
// It runs exactly
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -ldflags='-s -w' -o OUT ./DIR
//
// with -buildvcs=false added to GOFLAGS: otherwise the go command stamps the
// VCS revision and dirty flag into the binary, so every commit would change
// the .wasm (and a repository without commits could not build it at all).
// It then writes the Go version it used to OUT.go-version, because only the
// same Go version reproduces the same bytes.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

func main() {
	out := flag.String("o", "", "`file` to write (default DIR/DIR.wasm); its Go version goes to file.go-version")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: go run ./mkwasm.go [-o OUT] DIR")
		os.Exit(2)
	}
	dir := filepath.Clean(flag.Arg(0))
	if *out == "" {
		*out = filepath.Join(dir, dir+".wasm")
	}
	if err := build(*out, "./"+dir); err != nil {
		fmt.Fprintln(os.Stderr, "mkwasm:", err)
		os.Exit(1)
	}
}

func build(out, pkg string) error {
	env := append(os.Environ(),
		"GOOS=wasip1",
		"GOARCH=wasm",
		"GOFLAGS="+strings.TrimSpace(os.Getenv("GOFLAGS")+" -buildvcs=false"),
	)
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build: %w", err)
	}
	version := exec.Command("go", "env", "GOVERSION")
	version.Env = env
	version.Stderr = os.Stderr
	v, err := version.Output()
	if err != nil {
		return fmt.Errorf("go env GOVERSION: %w", err)
	}
	return os.WriteFile(out+".go-version", []byte(strings.TrimSpace(string(v))+"\n"), 0o644)
}
