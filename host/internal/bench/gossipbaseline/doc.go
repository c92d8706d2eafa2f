// Package gossipbaseline is benchmark infrastructure: it runs a cluster of
// hashicorp/memberlist members in this process, the well-kept SWIM
// (Lifeguard) membership library our own membership is compared with.
//
// The members use memberlist's native transport (UDP for probes and gossip,
// ad-hoc TCP for push/pull state sync and fallback probes) on 127.0.0.1, i.e.
// memberlist's best case: no encryption or authentication (no SecretKey, no
// label), no link costs (loopback latency, no loss), one process. Every
// member's transport is wrapped so that the bytes it sends are counted
// ([Cluster.Bytes]); nothing else about memberlist is changed beyond the
// timing mapping documented on [Options.DeadAfter].
//
// Typical use:
//
//	c, err := gossipbaseline.Start(gossipbaseline.Options{N: 10, DeadAfter: 2 * time.Second})
//	...
//	defer c.Close()
//	conv, err := c.WaitConverged(10 * time.Second)
//	_ = c.Kill(3)
//	detect, err := c.WaitDead(3, 15*time.Second)
//
// Nothing is sent anywhere but 127.0.0.1.
package gossipbaseline
