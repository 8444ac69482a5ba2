package aggregation

import (
	"crypto/md5"
	"fmt"
	"slices"
	"strings"
)

// IsAggregated reports whether data starts with Magic, that is, whether
// Deaggregate will try to decode it as an aggregate.
func IsAggregated(data []byte) bool {
	return len(data) >= len(Magic) && string(data[:len(Magic)]) == Magic
}

// Deaggregate appends to dst the user records held in the data of one Kinesis
// record and returns the extended slice. partitionKey and explicitHashKey are
// those of the Kinesis record; they are used when the data is returned whole.
//
// Data without Magic is appended as one user record with Aggregated false and
// subsequence number 0. Data with Magic is decoded; when that fails (checksum
// mismatch, truncation, malformed protobuf, missing required field, key index
// out of range) it is likewise appended whole as one user record, as the KCL
// does, and the error is a *CorruptError (errors.Is(err, ErrCorrupt)) telling
// why, so callers can count such records. The function never panics.
//
// The Data of each user record aliases data. Key strings are copied out of
// data into one allocation per aggregate and shared by the records; tag
// strings are allocated per tag. A valid aggregate with no records yields no
// user records.
func Deaggregate(dst []UserRecord, data []byte, partitionKey, explicitHashKey string) ([]UserRecord, error) {
	return deaggregate(dst, data, partitionKey, explicitHashKey, checksumUnknown, nil)
}

// What is known of an aggregate's checksum before deaggregate looks.
const (
	checksumUnknown = iota
	checksumGood
	checksumBad
)

func deaggregate(dst []UserRecord, data []byte, partitionKey, explicitHashKey string, checksum int, sc *tableScratch) ([]UserRecord, error) {
	if !IsAggregated(data) {
		return appendRaw(dst, data, partitionKey, explicitHashKey), nil
	}
	if len(data) < Overhead {
		return appendRaw(dst, data, partitionKey, explicitHashKey),
			&CorruptError{Reason: ReasonTruncated, Offset: len(data), Detail: fmt.Sprintf("%d bytes, need at least %d", len(data), Overhead)}
	}
	body := data[len(Magic) : len(data)-ChecksumSize]
	if checksum == checksumUnknown {
		checksum = checksumBad
		if md5.Sum(body) == [ChecksumSize]byte(data[len(data)-ChecksumSize:]) {
			checksum = checksumGood
		}
	}
	if checksum != checksumGood {
		return appendRaw(dst, data, partitionKey, explicitHashKey),
			&CorruptError{Reason: ReasonChecksum, Offset: -1}
	}
	out, err := decode(dst, body, sc)
	if err != nil {
		if err.Offset >= 0 {
			err.Offset += len(Magic)
		}
		return appendRaw(dst, data, partitionKey, explicitHashKey), err
	}
	return out, nil
}

func appendRaw(dst []UserRecord, data []byte, pk, ehk string) []UserRecord {
	return append(dst, UserRecord{PartitionKey: pk, ExplicitHashKey: ehk, Data: data})
}

// keyRef locates one key table entry in the protobuf bytes.
type keyRef struct {
	off, len int
	ehk      bool
}

// keyTables holds what scanTables found.
type keyTables struct {
	refs     []keyRef
	keyBytes int
	nPK      int
	nEHK     int
	nRec     int // records skipped, when the scan does not stop at them
}

// decode parses an AggregatedRecord message. The KPL writes the key tables
// before the records, which allows one pass: collect the tables, then decode
// the records against them. Protobuf allows any field order, so a table entry
// after a record sends decoding to a second, order-independent pass.
func decode(dst []UserRecord, b []byte, sc *tableScratch) ([]UserRecord, *CorruptError) {
	if sc == nil {
		var refsBuf [128]keyRef
		var tablesBuf [128]string
		out, _, _, _, err := decodeIn(dst, b, refsBuf[:0], tablesBuf[:0])
		return out, err
	}
	out, refs, tables, used, err := decodeIn(dst, b, sc.refs[:0], sc.tables[:0])
	sc.refs, sc.tables = refs[:0], tables[:0]
	clear(tables[:used]) // keep no aggregate's keys alive
	return out, err
}

// tableScratch is the space decode builds the key tables in: on the stack for one
// aggregate, kept by a Deaggregator for the next ones, since an aggregate of many keys
// outgrows the stack's.
type tableScratch struct {
	refs   []keyRef
	tables []string
}

// decodeIn is decode with refs and tables as the space for the key tables. It returns them,
// grown as they had to be, and how many entries of tables it wrote.
func decodeIn(dst []UserRecord, b []byte, refs []keyRef, tables []string) (out []UserRecord, _ []keyRef, _ []string, used int, err *CorruptError) {
	kt, first, err := scanTables(b, refs, true)
	if err != nil {
		return nil, kt.refs, tables, 0, err
	}
	pkTable, ehkTable := buildTables(&kt, b, tables)
	if cap(pkTable) > cap(tables) {
		tables = pkTable[:0]
	}
	used = len(kt.refs)
	out, late, err := decodeRecords(dst, b, first, pkTable, ehkTable, true)
	// An index past the tables seen so far may point into a later table.
	if !late && (err == nil || err.Reason != ReasonIndexOutOfRange) {
		return out, kt.refs, tables, used, err
	}

	kt, _, err = scanTables(b, kt.refs[:0], false)
	if err != nil {
		return nil, kt.refs, tables, used, err
	}
	pkTable, ehkTable = buildTables(&kt, b, tables[:0])
	if cap(pkTable) > cap(tables) {
		tables = pkTable[:0]
	}
	used = max(used, len(kt.refs))
	dst = slices.Grow(dst, kt.nRec)
	out, _, err = decodeRecords(dst, b, 0, pkTable, ehkTable, false)
	return out, kt.refs, tables, used, err
}

// scanTables collects the key table entries of the message, appending to
// refs, and validates the fields it passes. With stopAtRecord it stops at the
// first record and returns its offset; otherwise it skips records, counting
// them.
func scanTables(b []byte, refs []keyRef, stopAtRecord bool) (kt keyTables, end int, err *CorruptError) {
	kt.refs = refs
	for i := 0; i < len(b); {
		start := i
		tag, n := consumeVarint(b[i:])
		if n <= 0 {
			return kt, 0, malformed(start, "field tag")
		}
		i += n
		switch tag {
		case tagPartitionKeyTable, tagExplicitHashKeyTable:
			s, m := consumeBytes(b[i:])
			if m <= 0 {
				return kt, 0, malformed(start, "key table entry")
			}
			kt.refs = append(kt.refs, keyRef{off: i + m - len(s), len: len(s), ehk: tag == tagExplicitHashKeyTable})
			kt.keyBytes += len(s)
			if tag == tagExplicitHashKeyTable {
				kt.nEHK++
			} else {
				kt.nPK++
			}
			i += m
		case tagRecord:
			if stopAtRecord {
				return kt, start, nil
			}
			_, m := consumeBytes(b[i:])
			if m <= 0 {
				return kt, 0, malformed(start, "record length")
			}
			kt.nRec++
			i += m
		default:
			m, err := skipUnknown(b[i:], tag, start)
			if err != nil {
				return kt, 0, err
			}
			i += m
		}
	}
	return kt, len(b), nil
}

func skipUnknown(b []byte, tag uint64, at int) (int, *CorruptError) {
	if tag>>3 == 0 {
		return 0, malformed(at, "field number 0")
	}
	m := skipField(b, tag, 0)
	if m < 0 {
		return 0, malformed(at, fmt.Sprintf("unknown field %d", tag>>3))
	}
	return m, nil
}

// buildTables copies every key into one string, so that a whole aggregate
// costs a single allocation for its keys however many records share them,
// and slices the tables out of it. buf provides storage for the tables.
func buildTables(kt *keyTables, b []byte, buf []string) (pkTable, ehkTable []string) {
	if len(kt.refs) == 0 {
		return nil, nil
	}
	var sb strings.Builder
	sb.Grow(kt.keyBytes)
	for _, r := range kt.refs {
		sb.Write(b[r.off : r.off+r.len])
	}
	all := sb.String()
	tables := slices.Grow(buf[:0], len(kt.refs))[:len(kt.refs)]
	pkAt, ehkAt, pos := 0, kt.nPK, 0
	for _, r := range kt.refs {
		s := all[pos : pos+r.len]
		pos += r.len
		if r.ehk {
			tables[ehkAt] = s
			ehkAt++
		} else {
			tables[pkAt] = s
			pkAt++
		}
	}
	return tables[:kt.nPK], tables[kt.nPK:]
}

// decodeRecords appends the records found from offset i on. With
// stopAtTable it returns late=true, and dst unchanged, on meeting a key
// table entry; otherwise it skips table entries, which scanTables has
// validated.
func decodeRecords(dst []UserRecord, b []byte, i int, pkTable, ehkTable []string, stopAtTable bool) (out []UserRecord, late bool, err *CorruptError) {
	orig := len(dst)
	var sub int64
	for i < len(b) {
		start := i
		tag, n := consumeVarint(b[i:])
		if n <= 0 {
			return nil, false, malformed(start, "field tag")
		}
		i += n
		switch tag {
		case tagRecord:
			rb, m := consumeBytes(b[i:])
			if m <= 0 {
				return nil, false, malformed(start, "record length")
			}
			bodyAt := i + m - len(rb)
			i += m
			// Decode in place: copying a UserRecord per record costs
			// more than parsing it.
			if len(dst) == cap(dst) {
				dst = slices.Grow(dst, 1)
			}
			dst = dst[:len(dst)+1]
			if err := decodeRecord(&dst[len(dst)-1], rb, bodyAt, pkTable, ehkTable); err != nil {
				err.Detail = fmt.Sprintf("record %d: %s", sub, err.Detail)
				return nil, false, err
			}
			dst[len(dst)-1].SubSequenceNumber = sub
			sub++
		case tagPartitionKeyTable, tagExplicitHashKeyTable:
			if stopAtTable {
				return dst[:orig], true, nil
			}
			_, m := consumeBytes(b[i:])
			i += m
		default:
			m, err := skipUnknown(b[i:], tag, start)
			if err != nil {
				return nil, false, err
			}
			i += m
		}
	}
	return dst, false, nil
}

func malformed(off int, what string) *CorruptError {
	return &CorruptError{Reason: ReasonMalformed, Offset: off, Detail: what}
}

// decodeRecord parses one Record message into r; at is its offset in the
// protobuf bytes, for error reports.
func decodeRecord(r *UserRecord, b []byte, at int, pkTable, ehkTable []string) *CorruptError {
	if decodeRecordFast(r, b, pkTable, ehkTable) {
		return nil
	}
	return decodeRecordSlow(r, b, at, pkTable, ehkTable)
}

// decodeRecordSlow is decodeRecord for any layout protobuf allows.
func decodeRecordSlow(r *UserRecord, b []byte, at int, pkTable, ehkTable []string) *CorruptError {
	var data []byte
	var tags []Tag
	var pkAt, ehkAt uint64
	hasPK, hasEHK, hasData := false, false, false
	for i := 0; i < len(b); {
		start := i
		tag, n := consumeVarint(b[i:])
		if n <= 0 {
			return malformed(at+start, "field tag")
		}
		i += n
		switch tag {
		case tagPartitionKeyIndex:
			v, m := consumeVarint(b[i:])
			if m <= 0 {
				return malformed(at+start, "partition_key_index")
			}
			pkAt, hasPK = v, true
			i += m
		case tagExplicitHashKeyIndex:
			v, m := consumeVarint(b[i:])
			if m <= 0 {
				return malformed(at+start, "explicit_hash_key_index")
			}
			ehkAt, hasEHK = v, true
			i += m
		case tagData:
			d, m := consumeBytes(b[i:])
			if m <= 0 {
				return malformed(at+start, "data")
			}
			// Cap the capacity so that appending to one record's Data
			// cannot overwrite the next record.
			data, hasData = d[:len(d):len(d)], true
			i += m
		case tagTag:
			t, m := consumeBytes(b[i:])
			if m <= 0 {
				return malformed(at+start, "tag")
			}
			tg, err := decodeTag(t, at+i+m-len(t))
			if err != nil {
				return err
			}
			tags = append(tags, tg)
			i += m
		default:
			if tag>>3 == 0 {
				return malformed(at+start, "field number 0")
			}
			m := skipField(b[i:], tag, 0)
			if m < 0 {
				return malformed(at+start, fmt.Sprintf("unknown field %d", tag>>3))
			}
			i += m
		}
	}
	switch {
	case !hasPK:
		return &CorruptError{Reason: ReasonMissingField, Offset: at, Detail: "partition_key_index"}
	case !hasData:
		return &CorruptError{Reason: ReasonMissingField, Offset: at, Detail: "data"}
	case pkAt >= uint64(len(pkTable)):
		return &CorruptError{Reason: ReasonIndexOutOfRange, Offset: at,
			Detail: fmt.Sprintf("partition_key_index %d, table has %d", pkAt, len(pkTable))}
	case hasEHK && ehkAt >= uint64(len(ehkTable)):
		return &CorruptError{Reason: ReasonIndexOutOfRange, Offset: at,
			Detail: fmt.Sprintf("explicit_hash_key_index %d, table has %d", ehkAt, len(ehkTable))}
	}
	ehk := ""
	if hasEHK {
		ehk = ehkTable[ehkAt]
	}
	*r = UserRecord{PartitionKey: pkTable[pkAt], ExplicitHashKey: ehk, Data: data, Tags: tags, Aggregated: true}
	return nil
}

// decodeRecordFast decodes the layout the KPL and the Aggregator write:
// partition key index, optional explicit hash key index, data, nothing else.
// It reports false, touching nothing, for anything else, including every
// error, which the general path then reports.
func decodeRecordFast(r *UserRecord, b []byte, pkTable, ehkTable []string) bool {
	if len(b) < 4 || b[0] != tagPartitionKeyIndex {
		return false
	}
	pkAt, n := consumeVarint(b[1:])
	if n <= 0 || pkAt >= uint64(len(pkTable)) {
		return false
	}
	i := 1 + n
	ehk := ""
	if i < len(b) && b[i] == tagExplicitHashKeyIndex {
		ehkAt, m := consumeVarint(b[i+1:])
		if m <= 0 || ehkAt >= uint64(len(ehkTable)) {
			return false
		}
		ehk = ehkTable[ehkAt]
		i += 1 + m
	}
	if i >= len(b) || b[i] != tagData {
		return false
	}
	l, m := consumeVarint(b[i+1:])
	if m <= 0 || l != uint64(len(b)-i-1-m) {
		return false
	}
	data := b[i+1+m:]
	*r = UserRecord{PartitionKey: pkTable[pkAt], ExplicitHashKey: ehk, Data: data[:len(data):len(data)], Aggregated: true}
	return true
}

func decodeTag(b []byte, at int) (Tag, *CorruptError) {
	var t Tag
	hasKey := false
	for i := 0; i < len(b); {
		start := i
		tag, n := consumeVarint(b[i:])
		if n <= 0 {
			return t, malformed(at+start, "tag field")
		}
		i += n
		switch tag {
		case tagTagKey, tagTagValue:
			s, m := consumeBytes(b[i:])
			if m <= 0 {
				return t, malformed(at+start, "tag key or value")
			}
			if tag == tagTagKey {
				t.Key, hasKey = string(s), true
			} else {
				t.Value = string(s)
			}
			i += m
		default:
			if tag>>3 == 0 {
				return t, malformed(at+start, "field number 0")
			}
			m := skipField(b[i:], tag, 0)
			if m < 0 {
				return t, malformed(at+start, fmt.Sprintf("unknown tag field %d", tag>>3))
			}
			i += m
		}
	}
	if !hasKey {
		return t, &CorruptError{Reason: ReasonMissingField, Offset: at, Detail: "tag key"}
	}
	return t, nil
}
