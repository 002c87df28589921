package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// open opens the live file at start-up, repairs a torn last line and
// loads the chain's head from the files on disk.
func (s *FileSink) open() error {
	rotated, err := s.rotatedFiles()
	if err != nil {
		return err
	}
	if len(rotated) > 0 {
		s.lastRot = filepath.Base(rotated[len(rotated)-1])
	}
	f, fi, err := s.openLive()
	if err != nil {
		return err
	}
	size, last, err := s.repairTail(f, fi)
	if err != nil {
		f.Close()
		return err
	}
	head, found, err := lastChain(last, s.cfg.Path)
	// The live file is empty: the chain goes on from the newest rotated
	// file that has a record.
	for i := len(rotated) - 1; err == nil && !found && i >= 0; i-- {
		var line []byte
		line, err = readLastRecord(rotated[i], s)
		if err == nil {
			head, found, err = lastChain(line, rotated[i])
		}
	}
	if err != nil {
		f.Close()
		return err
	}
	if found {
		s.seq, s.hash = head.Seq, head.Hash
	}
	s.f, s.fi, s.size, s.fileSeq = f, fi, size, s.seq
	if first, ok := firstChain(s.cfg.Path); ok {
		s.fileSeq = first.Seq - 1
	}
	return nil
}

// firstChain reads the chain of a file's first line, for messages only.
func firstChain(path string) (Chain, bool) {
	f, err := os.Open(path)
	if err != nil {
		return Chain{}, false
	}
	defer f.Close()
	line, complete, err := readLine(bufio.NewReader(f))
	if err != nil || !complete {
		return Chain{}, false
	}
	m, err := decodeObject(line)
	if err != nil {
		return Chain{}, false
	}
	c, err := chainOf(m)
	return c, err == nil
}

// lastChain reads the chain of a file's last complete line; found is false
// for an empty file.
func lastChain(line []byte, file string) (Chain, bool, error) {
	if line == nil {
		return Chain{}, false, nil
	}
	m, err := decodeObject(line)
	if err != nil {
		return Chain{}, false, fmt.Errorf("audit: file sink: cannot continue the chain: the last line of %s is not JSON (%v); move the file aside", file, err)
	}
	c, err := chainOf(m)
	if err != nil {
		return Chain{}, false, fmt.Errorf("audit: file sink: cannot continue the chain: the last line of %s has %v; move the file aside", file, err)
	}
	return c, true, nil
}

// openLive opens Path for appending, creating it if need be.
func (s *FileSink) openLive() (*os.File, os.FileInfo, error) {
	_, statErr := os.Lstat(s.cfg.Path)
	f, err := os.OpenFile(s.cfg.Path, os.O_APPEND|os.O_CREATE|os.O_WRONLY|openNonblock, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("audit: file sink: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("audit: file sink: %w", err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("audit: file sink: %s is not a regular file", s.cfg.Path)
	}
	if errors.Is(statErr, fs.ErrNotExist) {
		s.syncDir() // make the new name durable
	}
	return f, fi, nil
}

// repairTail handles a last line without a newline (see FileSink) and
// returns the file's size afterwards and its last complete line (nil when
// there is none).
func (s *FileSink) repairTail(f *os.File, fi os.FileInfo) (int64, []byte, error) {
	size := fi.Size()
	if size == 0 {
		return 0, nil, nil
	}
	r, err := os.Open(s.cfg.Path)
	if err != nil {
		return 0, nil, fmt.Errorf("audit: file sink: reading %s: %w", s.cfg.Path, err)
	}
	defer r.Close()
	if rfi, err := r.Stat(); err != nil || !os.SameFile(rfi, fi) {
		return 0, nil, fmt.Errorf("audit: file sink: %s changed while opening it", s.cfg.Path)
	}
	last, tornStart, torn, err := readTail(r, size)
	if err != nil {
		return 0, nil, fmt.Errorf("audit: file sink: reading %s: %w", s.cfg.Path, err)
	}
	if torn == nil {
		return size, last, nil
	}
	switch {
	case json.Valid(torn):
		m, err := decodeObject(torn)
		if err == nil {
			_, err = chainOf(m)
		}
		if err != nil {
			return 0, nil, fmt.Errorf("audit: file sink: %s ends in a line without a newline that is JSON but not a chained record (%v); move the file aside", s.cfg.Path, err)
		}
		if _, err := s.write(f, []byte{'\n'}); err != nil {
			return 0, nil, fmt.Errorf("audit: file sink: completing the last line of %s: %w", s.cfg.Path, err)
		}
		s.warn(fmt.Sprintf("%s: the last record (%d bytes at offset %d) lacked its newline; added it", s.cfg.Path, len(torn), tornStart))
		last, size = torn, size+1
	default:
		// Saved first (torn.go): torn may be only a prefix of the bytes.
		saved, err := s.saveTorn(r, tornStart, size)
		if err != nil {
			return 0, nil, err
		}
		if err := f.Truncate(tornStart); err != nil {
			return 0, nil, fmt.Errorf("audit: file sink: cutting off the incomplete last line of %s: %w", s.cfg.Path, err)
		}
		s.warn(fmt.Sprintf("%s: cut off an incomplete last line (%d bytes at offset %d, not valid JSON: a write interrupted by a crash; saved as %s, sha256 %s): %s",
			s.cfg.Path, saved.Bytes, tornStart, saved.SavedAs, saved.SHA256, quotePrefix(torn, 80)))
		s.noteTornCut(saved)
		size = tornStart
	}
	if s.cfg.Fsync != FsyncNever {
		if err := s.sync(f); err != nil {
			return 0, nil, fmt.Errorf("audit: file sink: %w", err)
		}
	}
	return size, last, nil
}

func quotePrefix(b []byte, n int) string {
	if len(b) > n {
		return fmt.Sprintf("%q...", b[:n])
	}
	return fmt.Sprintf("%q", b)
}

// readTail returns the last complete line of r (without its newline; nil
// if none) and, when r does not end in a newline, the torn bytes after the
// last newline and their offset.
func readTail(r io.ReaderAt, size int64) (last []byte, tornStart int64, torn []byte, err error) {
	nl, err := lastNewline(r, size)
	if err != nil {
		return nil, 0, nil, err
	}
	end := size - 1 // the newline ending the last complete line
	if nl != size-1 {
		tornStart = nl + 1
		if torn, err = readRange(r, tornStart, size); err != nil {
			return nil, 0, nil, err
		}
		end = nl
	}
	if end < 0 {
		return nil, tornStart, torn, nil
	}
	start, err := lastNewline(r, end)
	if err != nil {
		return nil, 0, nil, err
	}
	if last, err = readRange(r, start+1, end); err != nil {
		return nil, 0, nil, err
	}
	return last, tornStart, torn, nil
}

// lastNewline is the offset of the last '\n' before end, or -1.
func lastNewline(r io.ReaderAt, end int64) (int64, error) {
	buf := make([]byte, 64<<10)
	for end > 0 {
		n := min(end, int64(len(buf)))
		start := end - n
		if _, err := r.ReadAt(buf[:n], start); err != nil {
			return 0, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			return start + int64(i), nil
		}
		end = start
	}
	return -1, nil
}

func readRange(r io.ReaderAt, start, end int64) ([]byte, error) {
	if end-start > maxLine {
		// Not a record: hand back a prefix that cannot parse.
		end = start + maxLine
	}
	b := make([]byte, end-start)
	if _, err := r.ReadAt(b, start); err != nil {
		return nil, err
	}
	return b, nil
}

// readLastRecord returns the last complete line of a rotated file (nil
// if it is empty). Rotated files are not repaired; a torn end there is
// left for the verifier to report.
func readLastRecord(path string, s *FileSink) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("audit: file sink: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("audit: file sink: %w", err)
	}
	last, _, torn, err := readTail(f, fi.Size())
	if err != nil {
		return nil, fmt.Errorf("audit: file sink: reading %s: %w", path, err)
	}
	if torn != nil {
		s.warn(fmt.Sprintf("%s: ends in an incomplete line (%d bytes); the chain continues from its last complete record", path, len(torn)))
	}
	return last, nil
}
