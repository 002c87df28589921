package audit

import (
	"errors"
	"fmt"
	"os"
)

// ErrFileMoved is wrapped by the errors of a sink whose Path no longer
// names the file it has open, or whose directory is no longer the one it
// opened the file in: the file or the directory was renamed, removed or
// replaced, or the directory's file system was unmounted (with umount -l
// the path then shows the directory underneath).
var ErrFileMoved = errors.New("audit: file sink: audit file moved or unmounted")

// identity is what the sink checks before every write: the open file
// (device and inode from fstat at open) and the directory it was opened
// in (stat of filepath.Dir(Path) then). Comparing the device as well as
// the inode is what tells a lazily unmounted directory from the one
// underneath it.
type identity struct{ file, dir fileID }

// check compares what Path and its directory name now with id: two
// stat(2) calls.
func (id identity) check(path, dir string) error {
	d, err := statID(dir)
	if err != nil {
		return fmt.Errorf("%w: %s: its directory is gone: %w", ErrFileMoved, path, err)
	}
	if !d.same(id.dir) {
		return fmt.Errorf("%w: %s: %s is no longer the directory the file was opened in (now %s, was %s): renamed, replaced or unmounted",
			ErrFileMoved, path, dir, d, id.dir)
	}
	f, err := statID(path)
	if err != nil {
		return fmt.Errorf("%w: %s no longer names the open file: %w", ErrFileMoved, path, err)
	}
	if !f.same(id.file) {
		return fmt.Errorf("%w: %s names another file (%s; the open file is %s)", ErrFileMoved, path, f, id.file)
	}
	return nil
}

// movedLocked stops the sink when Path no longer names the open file.
//
// The records written to the open file are in it, wherever it went: they
// are made durable there and acknowledged, not rolled back. Rolling them
// back and continuing from the last fsynced record, as the sink once did,
// forked the chain: the moved file kept seqs that the new file handed out
// again to other records.
func (s *FileSink) movedLocked(why error) error {
	if s.cfg.Fsync != FsyncNever && s.f != nil {
		if err := s.sync(s.f); err != nil {
			return s.failLocked(fmt.Errorf("%w (and the fsync of the moved file failed: %w)", why, err))
		}
		if !s.markDurableLocked() {
			return s.applyFaultLocked()
		}
		s.dirty = false
	}
	if s.seq == s.fileSeq {
		s.warn(fmt.Sprintf("%v; no records were written to it", why))
	} else {
		s.warn(fmt.Sprintf("%v; records seq %d..%d that were written to it are not in the live file any more (verify the moved file before the new one)",
			why, s.fileSeq+1, s.seq))
	}
	return s.failLocked(why)
}

// checkPublishedIdentity is Healthy's lock-free look at the path: nil
// when Path and its directory still name the open file. A rotation renames
// the file before it publishes the new one, so a mismatch seen while one
// runs (idGen odd, or changed meanwhile) does not count: the writer checks
// the path itself before its next write.
func (s *FileSink) checkPublishedIdentity() error {
	gen := s.idGen.Load()
	id := s.pubID.Load()
	if gen%2 == 1 || id == nil {
		return nil
	}
	if err := id.check(s.cfg.Path, s.dir); err != nil && s.idGen.Load() == gen {
		return err
	}
	return nil
}

// switchingFile marks the start of a change of the open file for
// checkPublishedIdentity; the returned func marks its end.
func (s *FileSink) switchingFile() (done func()) {
	s.idGen.Add(1)
	return func() { s.idGen.Add(1) }
}

// Reopen is the operator's decision that the directory now at
// filepath.Dir(Path) is the audit directory. A sink whose directory was
// renamed away, replaced or unmounted refuses until that same directory
// is back (renamed back, remounted); Reopen instead continues the chain
// in a live file in the directory there now, creating it if need be. Call
// it when the configuration is loaded again (a Caddy reload). On a sink
// whose file is in place it does nothing. It returns what Healthy would
// afterwards, and waits at most WriteTimeout for the writer lock.
func (s *FileSink) Reopen() error {
	if s.closedFlag.Load() {
		return ErrSinkClosed
	}
	if h := s.health.Load(); h.stalled {
		return h.err
	}
	if err := s.mu.lockWithin(s.cfg.WriteTimeout); err != nil {
		return err
	}
	defer s.mu.Unlock()
	err := s.readyLocked()
	if err == nil || s.closed || s.health.Load().stalled {
		return err
	}
	s.adoptDir = true
	return s.recoverLocked()
}

// settleOldFileLocked deals with the open file before recovery replaces
// it: what a failed write left after the last good record is cut off
// through the descriptor, which reaches the file even after it moved. If
// it cannot be cut and the file moved away, the records in it keep their
// seqs (the chain continues after them): a seq that may be in some file is
// never handed out again.
func (s *FileSink) settleOldFileLocked() error {
	err := s.cutBackLocked()
	if err == nil {
		return nil
	}
	if s.f != nil && s.id.check(s.cfg.Path, s.dir) == nil {
		return fmt.Errorf("cutting back a failed write: %w", err)
	}
	if s.written.seq > s.seq {
		s.warn(fmt.Sprintf("%s: records seq %d..%d, whose writes failed, could not be cut from the moved file (%v); the chain continues after them",
			s.cfg.Path, s.seq+1, s.written.seq, err))
		s.seq, s.hash = s.written.seq, s.written.hash
		// Even with a failure pending: no rollback may go below them.
		s.syncMu.Lock()
		s.setDurableSyncLocked()
		s.syncMu.Unlock()
	}
	return nil
}

// reopenLocked opens the live file for recovery: the open file again if
// Path still names it, else a new file at Path, but only in the directory
// the sink opened (or adopted, see Reopen), and only if it is empty or
// ends with the chain's head.
func (s *FileSink) reopenLocked() (*os.File, os.FileInfo, int64, error) {
	dirID, err := statID(s.dir)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("%w: %s: %w", ErrFileMoved, s.cfg.Path, err)
	}
	if !dirID.same(s.id.dir) && !s.adoptDir {
		return nil, nil, 0, fmt.Errorf("%w: %s is not the directory the sink opened (now %s, was %s); waiting for it to come back (rename it back or remount it), or reload the configuration to continue in the directory there now",
			ErrFileMoved, s.dir, dirID, s.id.dir)
	}
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
	s.labelLane(laneWriter, &opOpen)
	f, fi, err := s.openLive()
	if err != nil {
		return nil, nil, 0, err
	}
	s.id.dir = dirID
	if s.fi != nil && os.SameFile(fi, s.fi) {
		return f, fi, fi.Size(), nil
	}
	size, err := s.continueInLocked(f, fi)
	if err != nil {
		f.Close()
		return nil, nil, 0, err
	}
	s.fileSeq = s.seq
	return f, fi, size, nil
}

// continueInLocked accepts a new file at Path for the chain: an empty
// one, or one whose last record is the chain's head (a copy of the moved
// file put back). Anything else is someone else's and is left alone.
func (s *FileSink) continueInLocked(f *os.File, fi os.FileInfo) (int64, error) {
	if fi.Size() == 0 {
		return 0, nil
	}
	line, err := readLastRecord(s.cfg.Path, s)
	if err != nil {
		return 0, err
	}
	head, found, err := lastChain(line, s.cfg.Path)
	if err != nil {
		return 0, err
	}
	if !found || head.Seq != s.seq || head.Hash != s.hash {
		return 0, fmt.Errorf("audit: file sink: %s is a file that does not continue the chain (its last record is seq %d, the chain's head seq %d); move it aside",
			s.cfg.Path, head.Seq, s.seq)
	}
	size, _, err := s.repairTail(f, fi)
	return size, err
}
