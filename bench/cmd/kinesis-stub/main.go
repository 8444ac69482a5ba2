// Command kinesis-stub serves kinesisstub on a loopback port, in a process of its own so that
// a benchmark measuring its own CPU time does not count the server's.
//
// It prints "listening on ADDR" on stdout once ready and serves until stdin closes or it is
// killed.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"

	"github.com/shardline/shardline/bench/kinesisstub"
)

func main() {
	shards := flag.Int("shards", 4, "number of shards in the stub's stream")
	addr := flag.String("addr", "127.0.0.1:0", "listen address (loopback only)")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	log.Fatal(http.Serve(ln, kinesisstub.New(*shards)))
}
