//go:build !wasip1

package main

// main lets the package build outside wasip1, for the tests of its
// decoders (resp_test.go); the plugin itself is main.go.
func main() {}
