package node

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/internal/plugin"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/pycomms/pycomms-host/plugins"
)

// BenchmarkJSONCallToCBORHandler is issue 17's benchmark: a call in JSON
// to a handler that takes only CBOR (testdata/cbor/cbor_sum.c, through
// builtin:json-cbor both ways) next to a CBOR call to the same handler, in
// one loop so that both see the same machine. Each iteration makes one
// JSON call, one CBOR call, and the two conversions the JSON call needs
// (request JSON -> CBOR, reply CBOR -> JSON) directly on a json-cbor
// instance of its own; ns/op is their sum, the metrics split it:
//
//	json-ns, cbor-ns   one call each way through Node.Call (the local path
//	                   the control API and plugins use)
//	x-cbor             json-ns / cbor-ns
//	conv-ns            the two conversions alone (Version.Convert)
//	codec-share        conv-ns / json-ns: the codec's share of the JSON call
//	extra-share        (json-ns - cbor-ns) / json-ns: what the JSON call
//	                   costs beyond the CBOR one (conversions plus the
//	                   endpoint's work around them)
//
// Run: go test -run '^$' -bench JSONCallToCBORHandler -benchtime 3000x ./host/node/
func BenchmarkJSONCallToCBORHandler(b *testing.B) {
	dir := b.TempDir()
	n, _, _ := startNode(b, dir, fmt.Sprintf(jsonCBORConfig, cborSumWasm(b, dir)))
	e, err := plugin.NewEngine(plugin.EngineOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	wasm, _ := plugins.Builtin("json-cbor")
	conv, err := e.LoadCodec(context.Background(), plugin.Spec{Name: "json-cbor", Wasm: wasm, Instances: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer conv.Close()

	for _, ints := range []int{8, 1000} {
		b.Run(fmt.Sprintf("ints=%d", ints), func(b *testing.B) {
			nums := make([]string, ints)
			cborIn := []byte{0x99, byte(ints >> 8), byte(ints)} // array, 2-byte count
			for i := range nums {
				v := i % 1000
				nums[i] = strconv.Itoa(v)
				cborIn = append(cborIn, 0x19, byte(v>>8), byte(v)) // uint16 head
			}
			jsonIn := []byte("[" + strings.Join(nums, ",") + "]")
			call := func(payload []byte, ct string) []byte {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				out, err := n.Call(ctx, &message.Message{Kind: abi.KindRequest, Subject: "sum.ints", Payload: payload,
					Headers: abi.Headers{"content-type": ct}, Deadline: time.Now().Add(10 * time.Second), From: "bench"})
				if err != nil {
					b.Fatal(err)
				}
				return out
			}
			cborReply := call(cborIn, "application/cbor")
			if want := call(jsonIn, "application/json"); !strings.HasPrefix(string(want), `{"sum":`) {
				b.Fatalf("JSON call answered %q", want)
			}
			var jsonNs, cborNs, convNs int64
			b.SetBytes(int64(len(jsonIn)))
			for b.Loop() {
				t0 := time.Now()
				call(jsonIn, "application/json")
				t1 := time.Now()
				call(cborIn, "application/cbor")
				t2 := time.Now()
				if _, err := conv.Convert(context.Background(), "application/json", "application/cbor", jsonIn); err != nil {
					b.Fatal(err)
				}
				if _, err := conv.Convert(context.Background(), "application/cbor", "application/json", cborReply); err != nil {
					b.Fatal(err)
				}
				t3 := time.Now()
				jsonNs += t1.Sub(t0).Nanoseconds()
				cborNs += t2.Sub(t1).Nanoseconds()
				convNs += t3.Sub(t2).Nanoseconds()
			}
			N := float64(b.N)
			b.ReportMetric(float64(jsonNs)/N, "json-ns")
			b.ReportMetric(float64(cborNs)/N, "cbor-ns")
			b.ReportMetric(float64(jsonNs)/float64(cborNs), "x-cbor")
			b.ReportMetric(float64(convNs)/N, "conv-ns")
			b.ReportMetric(float64(convNs)/float64(jsonNs), "codec-share")
			b.ReportMetric(float64(jsonNs-cborNs)/float64(jsonNs), "extra-share")
		})
	}
}
