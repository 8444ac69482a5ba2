//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package checkpoint

// lockFile is a no-op where flock is unavailable: there the caller must make sure only one
// FileStore opens a given file.
func lockFile(string) (unlock func() error, err error) {
	return func() error { return nil }, nil
}
