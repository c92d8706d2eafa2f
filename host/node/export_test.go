package node

// RefusedCount is how many connections n's mesh refused (its trust policy
// or a failed handshake), for the tests of package node_test, which run
// nodes through the fault-test kit's cluster and see only exported API.
func RefusedCount(n *Node) uint64 { return n.mesh.RefusedCount() }

// SubscribeCollect subscribes to a topic through a control API client
// until the test ends and collects the payloads (queue_test.go).
var SubscribeCollect = subscribeCollect
