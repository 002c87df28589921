package audit

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// RotatedTimeFormat is the UTC timestamp appended to a rotated file's name
// (Path + "." + timestamp). It has a fixed width, so that sorting rotated
// names sorts them by age.
const RotatedTimeFormat = "20060102T150405.000000000Z"

// rotatedFiles lists Path's rotated files, oldest first.
func (s *FileSink) rotatedFiles() ([]string, error) {
	return RotatedFiles(s.cfg.Path)
}

// RotatedFiles lists the rotated files of the live file path (path + "." +
// a RotatedTimeFormat timestamp), oldest first. Other names beside it are
// left out.
func RotatedFiles(path string) ([]string, error) {
	dir, base := filepath.Dir(path), filepath.Base(path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("audit: listing rotated files: %w", err)
	}
	var out []string
	for _, e := range entries {
		if ts, ok := strings.CutPrefix(e.Name(), base+"."); ok && isRotatedStamp(ts) && e.Type().IsRegular() {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	slices.Sort(out)
	return out, nil
}

func isRotatedStamp(ts string) bool {
	t, err := time.Parse(RotatedTimeFormat, ts)
	return err == nil && t.Format(RotatedTimeFormat) == ts
}

// rotateLocked renames the live file to its rotated name and opens a new
// one. The old file is fsynced first (unless the mode is never), and
// everything in it is durable before the chain moves on to the new file,
// so that no failure can roll back into a file the sink no longer has
// open (the lines there could not be cut, and their seqs would be handed
// out again).
func (s *FileSink) rotateLocked() error {
	if s.cfg.Fsync != FsyncNever {
		if err := s.sync(s.f); err != nil {
			return err
		}
		if !s.markDurableLocked() {
			return s.applyFaultLocked()
		}
	}
	name := s.rotatedName()
	defer s.switchingFile()()
	s.labelLane(laneWriter, &opRename)
	if err := os.Rename(s.cfg.Path, name); err != nil {
		return err
	}
	s.lastRot = filepath.Base(name)
	s.f.Close()
	s.f = nil // a failure below leaves no file open: recovery creates it
	s.dirty = false
	s.labelLane(laneWriter, &opOpen)
	f, fi, err := s.openLive()
	if err != nil {
		return err
	}
	s.f, s.fi, s.size, s.fileSeq = f, fi, 0, s.seq
	s.id.file = fileIDOf(fi)
	s.written = headLink{s.seq, s.hash}
	s.pubID.Store(&identity{file: s.id.file, dir: s.id.dir})
	s.syncMu.Lock()
	s.setDurableSyncLocked()
	s.syncMu.Unlock()
	return nil
}

// rotatedName is Path + "." + now in UTC, made later than the last rotated
// name (a clock that went back) and unused.
func (s *FileSink) rotatedName() string {
	base := filepath.Base(s.cfg.Path)
	t := s.now().UTC()
	if prev, ok := strings.CutPrefix(s.lastRot, base+"."); ok {
		if pt, err := time.Parse(RotatedTimeFormat, prev); err == nil && !t.After(pt) {
			t = pt.Add(time.Nanosecond)
		}
	}
	for {
		name := s.cfg.Path + "." + t.Format(RotatedTimeFormat)
		if _, err := os.Lstat(name); errors.Is(err, fs.ErrNotExist) {
			return name
		}
		t = t.Add(time.Nanosecond)
	}
}
