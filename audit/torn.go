package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// A torn last line (a write cut short by a crash) is cut from the live file
// so that the chain can go on, but nothing is destroyed: the bytes are
// first saved beside the file, the cut is counted in Stats, and at open a
// repair record naming the saved file, the byte count and their SHA-256 is
// appended to the chain. The repair record skips one seq (Repair.RetiredSeq),
// the one the torn line held or would have held, so that no seq that may
// have been handed out for the lost record is ever given to other content.

// tornSuffix starts the name of a file holding cut bytes:
// <live file>.torn-<RotatedTimeFormat>. It is not a rotated file's name
// (isRotatedStamp refuses it), so verification never reads it as records.
const tornSuffix = ".torn-"

// saveTorn copies the bytes [start, end) of r, the live file, to a new
// file beside it and returns the repair to record (without RetiredSeq).
// The copy is durable (unless the fsync mode is never) before the caller
// cuts the bytes; if it cannot be made, nothing is cut.
func (s *FileSink) saveTorn(r io.ReaderAt, start, end int64) (Repair, error) {
	f, name, err := s.createTornFile()
	if err != nil {
		return Repair{}, fmt.Errorf("audit: file sink: saving the incomplete last line of %s before cutting it: %w", s.cfg.Path, err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.NewSectionReader(r, start, end-start))
	if err == nil && n != end-start {
		err = io.ErrUnexpectedEOF
	}
	if err == nil && s.cfg.Fsync != FsyncNever {
		err = s.sync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name) // incomplete; the bytes are still in the live file
		return Repair{}, fmt.Errorf("audit: file sink: saving the incomplete last line of %s to %s before cutting it: %w", s.cfg.Path, name, err)
	}
	s.syncDir()
	return Repair{Bytes: n, Offset: start, SHA256: hex.EncodeToString(h.Sum(nil)), SavedAs: filepath.Base(name)}, nil
}

// createTornFile creates <path>.torn-<now in UTC>, a nanosecond later if
// that name is taken, never overwriting a file.
func (s *FileSink) createTornFile() (*os.File, string, error) {
	t := s.now().UTC()
	for range 1000 {
		name := s.cfg.Path + tornSuffix + t.Format(RotatedTimeFormat)
		f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if !errors.Is(err, fs.ErrExist) {
			return f, name, err
		}
		t = t.Add(time.Nanosecond)
	}
	return nil, "", fmt.Errorf("no free name for %s%s<time>", s.cfg.Path, tornSuffix)
}

// noteTornCut publishes a cut in Stats and, while the sink is opening (the
// torn line is this chain's own), queues its repair record.
func (s *FileSink) noteTornCut(p Repair) {
	s.stats.tornCuts.Add(1)
	s.stats.tornBytes.Add(p.Bytes)
	saved := filepath.Join(filepath.Dir(s.cfg.Path), p.SavedAs)
	s.stats.lastTorn.Store(&saved)
	if s.opening {
		s.torn = append(s.torn, p)
	}
}

// writeRepairs appends a repair record for each torn line cut at open. The
// seq after the head is retired first, so the repair record's seq is the
// one after that and its prev the head's hash: a verifier accepts that gap
// only on a repair record that names the retired seq.
func (s *FileSink) writeRepairs() error {
	for _, p := range s.torn {
		s.mu.Lock()
		s.seq++
		p.RetiredSeq = s.seq
		// The retired seq stays retired even if the write below fails and
		// the head is rolled back to what is on disk.
		s.markDurableLocked()
		s.mu.Unlock()
		r := newRepairRecord(s.now(), p)
		if err := s.Write(r); err != nil {
			return fmt.Errorf("audit: file sink: writing the repair record of the line cut from %s (saved as %s): %w", s.cfg.Path, p.SavedAs, err)
		}
		s.opened = append(s.opened, r)
	}
	s.torn = nil
	return nil
}

// OpenRecords returns the records OpenFileSink appended to the chain, in
// order: a repair record for a torn line it cut, and a gateway_restarted
// outcome for each intent a stop had left without one. The handler may
// copy them to its logger; they are in the durable file already.
func (s *FileSink) OpenRecords() []*Record {
	// opened is only written before OpenFileSink returns.
	return append([]*Record(nil), s.opened...)
}
