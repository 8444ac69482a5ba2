package agent

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
)

// FingerprintSize is how many bytes at the start of a file make its fingerprint. A file
// shorter than this has a shorter fingerprint, which grows as the file does.
const FingerprintSize = 1024

// FileID is a file's device and inode. While the agent holds the file open the pair cannot be
// reused, so it identifies the file; once closed, the fingerprint guards against a new file
// that got the same inode.
type FileID struct {
	Dev uint64
	Ino uint64
}

// String returns "dev:ino", as logs show it.
func (id FileID) String() string { return fmt.Sprintf("%d:%d", id.Dev, id.Ino) }

// fileIDOf returns the identity of a stat result.
func fileIDOf(fi os.FileInfo) (FileID, bool) { return sysFileID(fi) }

// fingerprint is the first bytes of a file, up to FingerprintSize. The bytes themselves are
// kept, not a hash, so checking them after every read is a comparison; checkpoints store the
// hash.
type fingerprint struct {
	b []byte
}

func (f fingerprint) len() int { return len(f.b) }

func (f fingerprint) full() bool { return len(f.b) == FingerprintSize }

// hash is what a checkpoint stores.
func (f fingerprint) hash() string {
	sum := sha256.Sum256(f.b)
	return hex.EncodeToString(sum[:])
}

func hashOf(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// readFingerprint reads up to FingerprintSize bytes from the start of r.
func readFingerprint(r io.ReaderAt) (fingerprint, error) {
	buf := make([]byte, FingerprintSize)
	n, err := r.ReadAt(buf, 0)
	if err != nil && err != io.EOF {
		return fingerprint{}, err
	}
	return fingerprint{b: buf[:n:n]}, nil
}

// fpCheck compares a file's current start with a fingerprint. It returns same=false when the
// content was replaced (copytruncate, or a different file with a reused inode), and a
// fingerprint extended to what the file now holds when it only grew.
func fpCheck(r io.ReaderAt, old fingerprint, scratch []byte) (same bool, grown fingerprint, err error) {
	want := FingerprintSize
	buf := scratch[:want]
	n, err := r.ReadAt(buf, 0)
	if err != nil && err != io.EOF {
		return false, old, err
	}
	if n < old.len() || !bytes.Equal(buf[:old.len()], old.b) {
		return false, old, nil
	}
	if n > old.len() {
		nb := make([]byte, n)
		copy(nb, buf[:n])
		return true, fingerprint{b: nb}, nil
	}
	return true, old, nil
}
