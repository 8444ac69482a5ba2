package aggregation

import (
	"unsafe"

	"github.com/shardline/shardline/internal/md5lanes"
)

// Checksummer writes the MD5 checksums of aggregates flushed by
// FlushWithoutChecksum. Given many at once it hashes them side by side (sixteen
// at a time on CPUs with AVX-512), which costs several times less than hashing
// them one after the other. Its zero value is ready to use; it keeps its
// scratch space between calls, so a Checksummer that is reused allocates
// nothing. It is not safe for concurrent use.
type Checksummer struct {
	h      md5lanes.Hasher
	bodies [][]byte
	sums   [][ChecksumSize]byte
}

// Fill computes the checksum of each aggregate, the encoded Data of a record
// with Aggregated set, and writes it over the aggregate's last ChecksumSize
// bytes. An aggregate whose checksum is already there is left as it was: the
// checksum covers neither the magic prefix nor itself. Fill panics if an
// element is shorter than the magic prefix and a checksum.
func (c *Checksummer) Fill(aggregates [][]byte) {
	c.bodies = c.bodies[:0]
	for _, agg := range aggregates {
		if len(agg) < Overhead {
			panic("aggregation: Checksummer.Fill given a record too short to be an aggregate")
		}
		c.bodies = append(c.bodies, agg[len(Magic):len(agg)-ChecksumSize])
	}
	if cap(c.sums) < len(aggregates) {
		c.sums = make([][ChecksumSize]byte, len(aggregates))
	}
	sums := c.sums[:len(aggregates)]
	c.h.Sum(sums, c.bodies)
	for i, agg := range aggregates {
		copy(agg[len(agg)-ChecksumSize:], sums[i][:])
	}
	clear(c.bodies) // keep no caller's buffer alive
}

// Deaggregator deaggregates the Kinesis records of a batch as Deaggregate does, but checks
// the checksums of the batch's aggregates together, sixteen at a time on CPUs with AVX-512,
// the way Checksummer writes them: Prepare hashes the batch, and each Deaggregate call that
// follows for one of the same slices uses the result instead of hashing on its own. Its
// zero value is ready to use; it keeps its scratch space between batches. It is not safe
// for concurrent use.
type Deaggregator struct {
	h       md5lanes.Hasher
	bodies  [][]byte
	sums    [][ChecksumSize]byte
	checked []checkedAggregate
	next    int // the first entry of checked not yet used
	tables  tableScratch
}

// checkedAggregate is the checksum verdict on one aggregate of the prepared batch, tied to
// the very slice it was computed for.
type checkedAggregate struct {
	data *byte
	n    int
	good bool
}

// Prepare checks the checksums of the aggregates among records, each the data of one
// Kinesis record as Deaggregate takes it; other records are passed over. The bytes of
// records must not change until the Deaggregate calls for them. A Prepare forgets the batch
// before it.
func (d *Deaggregator) Prepare(records [][]byte) {
	d.forget()
	for _, r := range records {
		if IsAggregated(r) && len(r) >= Overhead {
			d.bodies = append(d.bodies, r[len(Magic):len(r)-ChecksumSize])
			d.checked = append(d.checked, checkedAggregate{data: unsafe.SliceData(r), n: len(r)})
		}
	}
	if len(d.bodies) == 0 {
		return
	}
	if cap(d.sums) < len(d.bodies) {
		d.sums = make([][ChecksumSize]byte, len(d.bodies))
	}
	sums := d.sums[:len(d.bodies)]
	d.h.Sum(sums, d.bodies)
	for i := range d.checked {
		c := &d.checked[i]
		r := unsafe.Slice(c.data, c.n)
		c.good = sums[i] == [ChecksumSize]byte(r[len(r)-ChecksumSize:])
	}
	clear(d.bodies)
	d.bodies = d.bodies[:0]
}

// Deaggregate is the package's Deaggregate, for one of the records of the last Prepare or
// any other. Called for the prepared records in their order, it uses Prepare's results; an
// aggregate met out of that order, or one Prepare did not see, is hashed on its own.
func (d *Deaggregator) Deaggregate(dst []UserRecord, data []byte, partitionKey, explicitHashKey string) ([]UserRecord, error) {
	checksum := checksumUnknown
	if IsAggregated(data) && len(data) >= Overhead {
		if d.next < len(d.checked) {
			if c := d.checked[d.next]; c.data == unsafe.SliceData(data) && c.n == len(data) {
				checksum = checksumBad
				if c.good {
					checksum = checksumGood
				}
				d.next++
				if d.next == len(d.checked) {
					d.forget() // every prepared record is done: keep none of them alive
				}
			}
		}
	}
	return deaggregate(dst, data, partitionKey, explicitHashKey, checksum, &d.tables)
}

func (d *Deaggregator) forget() {
	clear(d.checked)
	d.checked, d.next = d.checked[:0], 0
}
