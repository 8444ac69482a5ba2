//go:build !unix

package agent

import "os"

// sysFileID has no device and inode to offer here; the agent reports such files as
// unsupported rather than guess at identity.
func sysFileID(fi os.FileInfo) (FileID, bool) { return FileID{}, false }
