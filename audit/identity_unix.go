//go:build unix

package audit

import (
	"fmt"
	"os"
	"syscall"
)

// fileID is a file's device and inode number: what a path names.
type fileID struct{ dev, ino uint64 }

func (a fileID) same(b fileID) bool { return a == b }

func (a fileID) String() string { return fmt.Sprintf("dev %d ino %d", a.dev, a.ino) }

// statID is stat(2) of path (following symlinks), without the
// allocations of os.Stat: it runs before every write.
func statID(path string) (fileID, error) {
	var st syscall.Stat_t
	for {
		err := syscall.Stat(path, &st)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return fileID{}, &os.PathError{Op: "stat", Path: path, Err: err}
		}
		return fileID{dev: uint64(st.Dev), ino: uint64(st.Ino)}, nil
	}
}

// fileIDOf is the identity of an open file from its FileInfo (fstat).
func fileIDOf(fi os.FileInfo) fileID {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fileID{dev: uint64(st.Dev), ino: uint64(st.Ino)}
	}
	return fileID{}
}

// openNonblock keeps open(2) of a FIFO put at Path from waiting for a
// reader; it changes nothing for a regular file.
const openNonblock = syscall.O_NONBLOCK
