// Package bench is the root of pycomms-host's comparison benchmarks: the
// ones that measure this host against other systems (hashicorp/memberlist
// in membership/; NATS, go-redis, raw TLS/QUIC echoes, waPC and bare
// wazero in compare/; NATS JetStream, next to the durable work queues, in
// queues/) and so need those systems as dependencies. It is its own Go
// module (go.mod here, with a replace of the host module to ../../..) so
// that none of those systems is a dependency of the product: the host
// module's `go list -m all` does not list them. Its path, under
// host/internal/, lets it import the host's internal packages.
// footprint/ measures the host's own memory per link and per plugin
// instance, to compare one commit with another.
//
// Run from this directory:
//
//	go test ./membership -run XXX -bench Membership -benchtime 1x
//	go run ./cmd/compare    # the side-by-side table of the README
//	go test ./footprint -run XXX -bench Links -benchtime 3x  # memory per link
//	go test ./queues -run '^$' -bench DurableQueue -count 3  # vs JetStream
package bench
