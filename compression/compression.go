package compression

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
)

// Magic is the 4-byte prefix of a frame. It is a string constant so that it cannot be
// modified and compares with string(b[:4]) without allocating.
const Magic = "\xf8SLZ"

// MaxDecodedSize bounds the decoded payload of a frame. A Kinesis record holds at most 1 MiB,
// and no compressor worth using turns 16 MiB into less than that except for input crafted to
// explode, so Decode rejects larger announcements before allocating.
const MaxDecodedSize = 16 << 20

// headerMin is the smallest frame: magic, codec, a one-byte length and the checksum.
const headerMin = len(Magic) + 1 + 1 + 4

// Codec selects the compression of a frame's payload.
type Codec uint8

// Codecs. The values are the frame's codec byte and never change.
const (
	// None stores the payload uncompressed. It exists to escape blobs that start with Magic.
	None Codec = 0
	// Gzip is RFC 1952 gzip at the default level: the most widely readable choice.
	Gzip Codec = 1
	// Zstd is RFC 8878 Zstandard at the default level: the best ratio for the CPU spent.
	Zstd Codec = 2
	// Snappy is the snappy block format: the cheapest to encode and decode.
	Snappy Codec = 3
)

// String returns the codec's name as ParseCodec accepts it.
func (c Codec) String() string {
	switch c {
	case None:
		return "none"
	case Gzip:
		return "gzip"
	case Zstd:
		return "zstd"
	case Snappy:
		return "snappy"
	}
	return fmt.Sprintf("Codec(%d)", uint8(c))
}

// Valid reports whether c is one of the defined codecs.
func (c Codec) Valid() bool { return c <= Snappy }

// ParseCodec parses "none", "gzip", "zstd" or "snappy".
func ParseCodec(s string) (Codec, error) {
	for c := None; c <= Snappy; c++ {
		if s == c.String() {
			return c, nil
		}
	}
	return 0, fmt.Errorf("compression: unknown codec %q (want none, gzip, zstd or snappy)", s)
}

// ErrCorrupt matches every *FrameError with errors.Is.
var ErrCorrupt = errors.New("compression: corrupt frame")

// ErrUnknownCodec is returned by Encode for a codec outside the defined ones.
var ErrUnknownCodec = errors.New("compression: unknown codec")

// Reason classifies why a frame could not be decoded.
type Reason uint8

// Reasons reported in FrameError.
const (
	// ReasonTruncated: the blob starts with Magic but ends inside the header.
	ReasonTruncated Reason = iota + 1
	// ReasonCodec: the codec byte is not a defined codec.
	ReasonCodec
	// ReasonLength: the length varint is malformed or above MaxDecodedSize, or the payload
	// decoded to a different length.
	ReasonLength
	// ReasonPayload: the codec could not decode the payload.
	ReasonPayload
	// ReasonChecksum: the decoded payload does not match the CRC-32C in the header.
	ReasonChecksum
)

// String describes the reason in a few words.
func (r Reason) String() string {
	switch r {
	case ReasonTruncated:
		return "truncated header"
	case ReasonCodec:
		return "unknown codec"
	case ReasonLength:
		return "bad length"
	case ReasonPayload:
		return "undecodable payload"
	case ReasonChecksum:
		return "checksum mismatch"
	}
	return fmt.Sprintf("Reason(%d)", uint8(r))
}

// FrameError reports a blob that starts with Magic but is not a valid frame.
type FrameError struct {
	Reason Reason
	// Codec is the codec byte of the frame, when the header got that far.
	Codec Codec
	// Detail adds context, such as the lengths involved; may be empty.
	Detail string
	// Err is the codec's own error for ReasonPayload; nil otherwise.
	Err error
}

// Error reports the reason, the codec and the detail.
func (e *FrameError) Error() string {
	msg := "compression: corrupt frame: " + e.Reason.String()
	if e.Reason != ReasonTruncated && e.Reason != ReasonCodec {
		msg += " (" + e.Codec.String() + ")"
	}
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Is makes errors.Is(err, ErrCorrupt) match.
func (e *FrameError) Is(target error) bool { return target == ErrCorrupt }

// Unwrap returns the codec's error, if any.
func (e *FrameError) Unwrap() error { return e.Err }

// IsFramed reports whether b starts with Magic, that is, whether Decode will try to decode it.
func IsFramed(b []byte) bool {
	return len(b) >= len(Magic) && string(b[:len(Magic)]) == Magic
}

// Overhead returns the size of a frame's header for a payload of n decoded bytes.
func Overhead(n int) int {
	return len(Magic) + 1 + uvarintLen(uint64(n)) + 4
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Encode appends to dst a frame holding src compressed with codec, and returns the extended
// slice. It reuses dst's spare capacity, so a caller that recycles its buffers allocates
// nothing for Snappy, Zstd and None once they are large enough. src larger than MaxDecodedSize
// is refused, since Decode would refuse the frame.
func Encode(dst, src []byte, codec Codec) ([]byte, error) {
	if !codec.Valid() {
		return dst, fmt.Errorf("%w: %d", ErrUnknownCodec, uint8(codec))
	}
	if len(src) > MaxDecodedSize {
		return dst, fmt.Errorf("compression: payload of %d bytes exceeds MaxDecodedSize (%d)", len(src), MaxDecodedSize)
	}
	dst = append(dst, Magic...)
	dst = append(dst, byte(codec))
	dst = binary.AppendUvarint(dst, uint64(len(src)))
	dst = binary.BigEndian.AppendUint32(dst, crc32.Checksum(src, castagnoli))
	switch codec {
	case None:
		return append(dst, src...), nil
	case Snappy:
		start := len(dst)
		dst = grow(dst, snappy.MaxEncodedLen(len(src)))
		enc := snappy.Encode(dst[start:cap(dst)], src)
		return dst[:start+len(enc)], nil
	case Zstd:
		return zstdEncoder().EncodeAll(src, dst), nil
	default: // Gzip
		return encodeGzip(dst, src)
	}
}

// grow returns b with room for n more bytes without changing its length.
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	nb := make([]byte, len(b), len(b)+n)
	copy(nb, b)
	return nb
}

var (
	zstdEncOnce sync.Once
	zstdEnc     *zstd.Encoder
	zstdDecOnce sync.Once
	zstdDec     *zstd.Decoder
)

// zstdEncoder returns the process-wide encoder. EncodeAll is safe for concurrent use and keeps
// its state in an internal pool, so one encoder serves every goroutine.
func zstdEncoder() *zstd.Encoder {
	zstdEncOnce.Do(func() {
		// Options are constant and valid, so NewWriter cannot fail.
		zstdEnc, _ = zstd.NewWriter(nil,
			zstd.WithEncoderLevel(zstd.SpeedDefault),
			zstd.WithEncoderCRC(false), // the frame carries its own checksum
			zstd.WithZeroFrames(true))
	})
	return zstdEnc
}

func zstdDecoder() *zstd.Decoder {
	zstdDecOnce.Do(func() {
		zstdDec, _ = zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(0),
			zstd.WithDecoderMaxMemory(MaxDecodedSize),
			zstd.WithDecodeAllCapLimit(true))
	})
	return zstdDec
}

// appendWriter lets a pooled gzip.Writer append to a slice it is reset onto.
type appendWriter struct{ b []byte }

// Write appends p; it never fails.
func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

type gzipState struct {
	w   *gzip.Writer
	out appendWriter
}

var gzipPool = sync.Pool{New: func() any {
	s := &gzipState{}
	s.w = gzip.NewWriter(&s.out)
	return s
}}

func encodeGzip(dst, src []byte) ([]byte, error) {
	s := gzipPool.Get().(*gzipState)
	s.out.b = dst
	s.w.Reset(&s.out)
	_, err := s.w.Write(src)
	if err == nil {
		err = s.w.Close()
	}
	dst = s.out.b
	s.out.b = nil
	gzipPool.Put(s)
	return dst, err
}

var gzipReaders sync.Pool

// Decode undoes Encode: it returns the payload of the frame in src in a new slice. A src that
// does not start with Magic is returned unchanged (the same slice), so Decode can be applied to
// every record of a stream. A src that starts with Magic but is not a valid frame gives a
// *FrameError.
func Decode(src []byte) ([]byte, error) {
	if !IsFramed(src) {
		return src, nil
	}
	return AppendDecode(nil, src)
}

// AppendDecode is Decode appending the payload to dst, for callers that recycle buffers. A src
// without Magic is appended as is.
func AppendDecode(dst, src []byte) ([]byte, error) {
	if !IsFramed(src) {
		return append(dst, src...), nil
	}
	if len(src) < headerMin {
		return dst, &FrameError{Reason: ReasonTruncated, Detail: fmt.Sprintf("%d bytes, need at least %d", len(src), headerMin)}
	}
	codec := Codec(src[len(Magic)])
	if !codec.Valid() {
		return dst, &FrameError{Reason: ReasonCodec, Codec: codec, Detail: fmt.Sprintf("codec byte %d", uint8(codec))}
	}
	rest := src[len(Magic)+1:]
	size, n := binary.Uvarint(rest)
	if n <= 0 {
		if n == 0 {
			return dst, &FrameError{Reason: ReasonTruncated, Codec: codec, Detail: "length varint runs past the end"}
		}
		return dst, &FrameError{Reason: ReasonLength, Codec: codec, Detail: "length varint overflows 64 bits"}
	}
	if size > MaxDecodedSize {
		return dst, &FrameError{Reason: ReasonLength, Codec: codec, Detail: fmt.Sprintf("announces %d bytes, limit %d", size, MaxDecodedSize)}
	}
	rest = rest[n:]
	if len(rest) < 4 {
		return dst, &FrameError{Reason: ReasonTruncated, Codec: codec, Detail: "checksum runs past the end"}
	}
	want := binary.BigEndian.Uint32(rest)
	payload := rest[4:]

	start := len(dst)
	dst = grow(dst, int(size))
	out, err := decodePayload(dst, payload, codec, int(size))
	if err != nil {
		return dst[:start], &FrameError{Reason: ReasonPayload, Codec: codec, Err: err}
	}
	got := out[start:]
	if len(got) != int(size) {
		return dst[:start], &FrameError{Reason: ReasonLength, Codec: codec, Detail: fmt.Sprintf("announces %d bytes, payload decodes to %d", size, len(got))}
	}
	if crc32.Checksum(got, castagnoli) != want {
		return dst[:start], &FrameError{Reason: ReasonChecksum, Codec: codec}
	}
	return out, nil
}

// errTooLong reports a payload that decodes past its announced length.
var errTooLong = errors.New("payload decodes past the announced length")

// decodePayload appends the decoded payload to dst, which has room for size bytes. Each codec
// is stopped at size+1 bytes so that a hostile payload cannot make it allocate more.
func decodePayload(dst, payload []byte, codec Codec, size int) ([]byte, error) {
	switch codec {
	case None:
		return append(dst, payload...), nil
	case Snappy:
		n, err := snappy.DecodedLen(payload)
		if err != nil {
			return dst, err
		}
		if n != size {
			return dst, fmt.Errorf("snappy block announces %d bytes, frame %d", n, size)
		}
		start := len(dst)
		out, err := snappy.Decode(dst[start:cap(dst)], payload)
		if err != nil {
			return dst, err
		}
		return append(dst, out...), nil
	case Zstd:
		// The cap limit makes DecodeAll fail rather than grow past size bytes.
		return zstdDecoder().DecodeAll(payload, dst[:len(dst):len(dst)+size])
	default: // Gzip
		var zr *gzip.Reader
		if v := gzipReaders.Get(); v != nil {
			zr = v.(*gzip.Reader)
			if err := zr.Reset(bytes.NewReader(payload)); err != nil {
				return dst, err
			}
		} else {
			var err error
			if zr, err = gzip.NewReader(bytes.NewReader(payload)); err != nil {
				return dst, err
			}
		}
		defer gzipReaders.Put(zr)
		zr.Multistream(false)
		start := len(dst)
		buf := dst[start : start+size]
		if _, err := io.ReadFull(zr, buf); err != nil {
			if err == io.ErrUnexpectedEOF || err == io.EOF {
				return dst, fmt.Errorf("payload decodes to fewer than %d bytes", size)
			}
			return dst, err
		}
		// The stream must end here, with its trailer verified.
		var one [1]byte
		if n, err := zr.Read(one[:]); n > 0 {
			return dst, errTooLong
		} else if err != io.EOF {
			if err == nil {
				err = errors.New("gzip stream does not end after the announced length")
			}
			return dst, err
		}
		return dst[:start+size], nil
	}
}
