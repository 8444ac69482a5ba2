package compression_test

import (
	"fmt"

	"github.com/shardline/shardline/compression"
)

func Example() {
	record := []byte(`{"event":"click","user":"u-1"} {"event":"click","user":"u-2"} {"event":"click","user":"u-3"}`)

	frame, err := compression.Encode(nil, record, compression.Zstd)
	if err != nil {
		panic(err)
	}
	fmt.Println("framed:", compression.IsFramed(frame))

	// A consumer decodes every blob; plain ones come back unchanged.
	for _, blob := range [][]byte{frame, []byte("plain")} {
		data, err := compression.Decode(blob)
		if err != nil {
			panic(err)
		}
		fmt.Println(string(data[:min(len(data), 16)]))
	}
	// Output:
	// framed: true
	// {"event":"click"
	// plain
}
