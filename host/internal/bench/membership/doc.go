// Package membership compares the mesh's membership (flooded signed
// records over the mesh's links) with hashicorp/memberlist (SWIM), run by
// package gossipbaseline, on the same shape: hosts on loopback that know
// only one seed. Its benchmark and tests build hosts from the public API of
// host/internal/mesh, host/internal/router and host/internal/identity, as an embedder would.
package membership
