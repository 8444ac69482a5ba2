package kinesistest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/aws/smithy-go/encoding/cbor"
)

// The Smithy RPC v2 CBOR protocol, which the SDK speaks when a client's Options.Protocol is
// rpcv2.NewCBOR: POST /service/Kinesis_20131202/operation/<Operation> with a
// Smithy-Protocol: rpc-v2-cbor header and CBOR bodies, in which blobs are byte strings and
// timestamps carry tag 1. The server translates such a request to the JSON its handlers
// read and their JSON answer back to CBOR, so both protocols share one implementation.
// https://smithy.io/2.0/additional-specs/protocols/smithy-rpc-v2.html

const cborPathPrefix = "/service/Kinesis_20131202/operation/"

func isCBOR(r *http.Request) bool {
	return r.Header.Get("Smithy-Protocol") == "rpc-v2-cbor"
}

// cborToJSON turns a CBOR request body into the equivalent JSON request.
func cborToJSON(body []byte) ([]byte, error) {
	if len(body) == 0 {
		return []byte("{}"), nil
	}
	v, err := cbor.Decode(body)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := writeJSON(&b, v, 0); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func writeJSON(b *bytes.Buffer, v cbor.Value, depth int) error {
	if depth > 64 {
		return fmt.Errorf("CBOR nested more than 64 levels")
	}
	switch v := v.(type) {
	case cbor.Map:
		b.WriteByte('{')
		first := true
		for k, e := range v {
			if !first {
				b.WriteByte(',')
			}
			first = false
			q, _ := json.Marshal(k)
			b.Write(q)
			b.WriteByte(':')
			if err := writeJSON(b, e, depth+1); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	case cbor.List:
		b.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeJSON(b, e, depth+1); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case cbor.Slice:
		b.WriteByte('"')
		b.WriteString(base64.StdEncoding.EncodeToString(v))
		b.WriteByte('"')
	case cbor.String:
		q, _ := json.Marshal(string(v))
		b.Write(q)
	case cbor.Uint:
		b.WriteString(strconv.FormatUint(uint64(v), 10))
	case cbor.NegInt:
		if v == 0 {
			return fmt.Errorf("CBOR negative integer out of range")
		}
		b.WriteString("-" + strconv.FormatUint(uint64(v), 10))
	case cbor.Float32:
		return writeFloat(b, float64(v))
	case cbor.Float64:
		return writeFloat(b, float64(v))
	case cbor.Bool:
		b.WriteString(strconv.FormatBool(bool(v)))
	case *cbor.Nil, *cbor.Undefined:
		b.WriteString("null")
	case *cbor.Tag:
		// Tag 1 is an epoch-seconds timestamp; JSON carries the number itself.
		if v.ID != 1 {
			return fmt.Errorf("CBOR tag %d is not served", v.ID)
		}
		return writeJSON(b, v.Value, depth+1)
	default:
		return fmt.Errorf("CBOR value %T is not served", v)
	}
	return nil
}

func writeFloat(b *bytes.Buffer, f float64) error {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Errorf("CBOR float %v has no JSON form", f)
	}
	b.WriteString(strconv.FormatFloat(f, 'g', -1, 64))
	return nil
}

// jsonToCBOR turns a JSON answer into CBOR. The API's only blob member in answers is Data
// and its timestamps are the members named ...Timestamp; the rest map one to one.
func jsonToCBOR(body []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	c, err := toCBOR(v, "")
	if err != nil {
		return nil, err
	}
	return cbor.Encode(c), nil
}

func toCBOR(v any, key string) (cbor.Value, error) {
	switch v := v.(type) {
	case map[string]any:
		m := make(cbor.Map, len(v))
		for k, e := range v {
			c, err := toCBOR(e, k)
			if err != nil {
				return nil, err
			}
			m[k] = c
		}
		return m, nil
	case []any:
		l := make(cbor.List, len(v))
		for i, e := range v {
			c, err := toCBOR(e, "")
			if err != nil {
				return nil, err
			}
			l[i] = c
		}
		return l, nil
	case string:
		if key == "Data" {
			raw, err := base64.StdEncoding.DecodeString(v)
			if err != nil {
				return nil, err
			}
			return cbor.Slice(raw), nil
		}
		return cbor.String(v), nil
	case json.Number:
		var n cbor.Value
		if i, err := v.Int64(); err == nil {
			if i >= 0 {
				n = cbor.Uint(i)
			} else {
				n = cbor.NegInt(-i)
			}
		} else {
			f, err := v.Float64()
			if err != nil {
				return nil, err
			}
			n = cbor.Float64(f)
		}
		if strings.HasSuffix(key, "Timestamp") {
			return &cbor.Tag{ID: 1, Value: n}, nil
		}
		return n, nil
	case bool:
		return cbor.Bool(v), nil
	case nil:
		return &cbor.Nil{}, nil
	}
	return nil, fmt.Errorf("JSON value %T has no CBOR form", v)
}
