// Package kinesisstub is a minimal Kinesis endpoint for benchmarks: it speaks the AWS JSON 1.1
// protocol for ListShards, PutRecords and PutRecord, and Smithy RPC v2 CBOR for ListShards and
// PutRecords (which real Kinesis accepts and kinesis-mock does not), accepts every record, and answers with
// sequence numbers and the shard each record's hash key falls in. It stores nothing, so it
// costs the client what a fast, never-throttling Kinesis would, and the client's own cost is
// what a benchmark sees. Never use it to judge correctness: the emulators do that.
package kinesisstub

import (
	"crypto/md5"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/aws/smithy-go/encoding/cbor"
)

// Server answers Kinesis calls for one stream of evenly split shards.
type Server struct {
	shards []shard
	seq    atomic.Uint64
	// Records counts the records accepted.
	Records atomic.Int64
	// Requests counts the requests served.
	Requests atomic.Int64
}

type shard struct {
	id         string
	start, end *big.Int
}

// New returns a Server for a stream of n shards splitting the hash key space evenly.
func New(n int) *Server {
	max := new(big.Int).Lsh(big.NewInt(1), 128)
	step := new(big.Int).Div(max, big.NewInt(int64(n)))
	s := &Server{}
	for i := 0; i < n; i++ {
		start := new(big.Int).Mul(step, big.NewInt(int64(i)))
		end := new(big.Int).Sub(new(big.Int).Add(start, step), big.NewInt(1))
		if i == n-1 {
			end = new(big.Int).Sub(max, big.NewInt(1))
		}
		s.shards = append(s.shards, shard{id: fmt.Sprintf("shardId-%012d", i), start: start, end: end})
	}
	return s
}

func (s *Server) shardFor(pk, ehk string) string {
	var h *big.Int
	if ehk != "" {
		h, _ = new(big.Int).SetString(ehk, 10)
	}
	if h == nil {
		sum := md5.Sum([]byte(pk))
		h = new(big.Int).SetBytes(sum[:])
	}
	for _, sh := range s.shards {
		if h.Cmp(sh.start) >= 0 && h.Cmp(sh.end) <= 0 {
			return sh.id
		}
	}
	return s.shards[len(s.shards)-1].id
}

type entry struct {
	PartitionKey    string
	ExplicitHashKey string
	// Data is left undecoded: the stub does not need it, and decoding would only slow it.
	Data json.RawMessage
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.Requests.Add(1)
	if i := strings.Index(r.URL.Path, "/operation/"); i >= 0 {
		s.serveCBOR(w, r, r.URL.Path[i+len("/operation/"):])
		return
	}
	target := r.Header.Get("X-Amz-Target")
	op := target[strings.LastIndexByte(target, '.')+1:]
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	switch op {
	case "ListShards":
		type rng struct{ StartingHashKey, EndingHashKey string }
		type seqRange struct{ StartingSequenceNumber string }
		type sh struct {
			ShardId             string
			HashKeyRange        rng
			SequenceNumberRange seqRange
		}
		out := struct{ Shards []sh }{}
		for _, x := range s.shards {
			out.Shards = append(out.Shards, sh{x.id, rng{x.start.String(), x.end.String()}, seqRange{"1"}})
		}
		_ = json.NewEncoder(w).Encode(out)
	case "PutRecords":
		var in struct{ Records []entry }
		if err := json.Unmarshal(body, &in); err != nil {
			writeError(w, "SerializationException", err.Error())
			return
		}
		var b strings.Builder
		b.WriteString(`{"FailedRecordCount":0,"Records":[`)
		for i, e := range in.Records {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`{"SequenceNumber":"`)
			b.WriteString(strconv.FormatUint(s.seq.Add(1), 10))
			b.WriteString(`","ShardId":"`)
			b.WriteString(s.shardFor(e.PartitionKey, e.ExplicitHashKey))
			b.WriteString(`"}`)
		}
		b.WriteString(`]}`)
		s.Records.Add(int64(len(in.Records)))
		_, _ = io.WriteString(w, b.String())
	case "PutRecord":
		var e entry
		if err := json.Unmarshal(body, &e); err != nil {
			writeError(w, "SerializationException", err.Error())
			return
		}
		s.Records.Add(1)
		fmt.Fprintf(w, `{"SequenceNumber":"%d","ShardId":"%s"}`, s.seq.Add(1), s.shardFor(e.PartitionKey, e.ExplicitHashKey))
	default:
		writeError(w, "UnknownOperationException", "kinesisstub does not serve "+op)
	}
}

func writeError(w http.ResponseWriter, code, msg string) {
	w.WriteHeader(http.StatusBadRequest)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": code, "message": msg})
}

// serveCBOR answers the RPC v2 CBOR protocol, in which record data travels as raw bytes
// rather than base64 inside JSON.
func (s *Server) serveCBOR(w http.ResponseWriter, r *http.Request, op string) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/cbor")
	w.Header().Set("Smithy-Protocol", "rpc-v2-cbor")
	var out cbor.Map
	switch op {
	case "ListShards":
		var shards cbor.List
		for _, x := range s.shards {
			shards = append(shards, cbor.Map{
				"ShardId":             cbor.String(x.id),
				"HashKeyRange":        cbor.Map{"StartingHashKey": cbor.String(x.start.String()), "EndingHashKey": cbor.String(x.end.String())},
				"SequenceNumberRange": cbor.Map{"StartingSequenceNumber": cbor.String("1")},
			})
		}
		out = cbor.Map{"Shards": shards}
	case "PutRecords":
		v, err := cbor.Decode(body)
		in, ok := v.(cbor.Map)
		if err != nil || !ok {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write(cbor.Encode(cbor.Map{"__type": cbor.String("SerializationException")}))
			return
		}
		entries, _ := in["Records"].(cbor.List)
		results := make(cbor.List, len(entries))
		for i, e := range entries {
			m, _ := e.(cbor.Map)
			pk, _ := m["PartitionKey"].(cbor.String)
			ehk, _ := m["ExplicitHashKey"].(cbor.String)
			results[i] = cbor.Map{
				"SequenceNumber": cbor.String(strconv.FormatUint(s.seq.Add(1), 10)),
				"ShardId":        cbor.String(s.shardFor(string(pk), string(ehk))),
			}
		}
		s.Records.Add(int64(len(entries)))
		out = cbor.Map{"FailedRecordCount": cbor.Uint(0), "Records": results}
	default:
		w.WriteHeader(http.StatusBadRequest)
		out = cbor.Map{"__type": cbor.String("UnknownOperationException")}
	}
	_, _ = w.Write(cbor.Encode(out))
}
