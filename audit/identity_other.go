//go:build !unix

package audit

import "os"

// fileID is what a path names; outside Unix, compared by os.SameFile.
type fileID struct{ fi os.FileInfo }

func (a fileID) same(b fileID) bool { return a.fi != nil && b.fi != nil && os.SameFile(a.fi, b.fi) }

func (a fileID) String() string {
	if a.fi == nil {
		return "unknown file"
	}
	return a.fi.Name()
}

func statID(path string) (fileID, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileID{}, err
	}
	return fileID{fi}, nil
}

func fileIDOf(fi os.FileInfo) fileID { return fileID{fi} }

const openNonblock = 0
