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
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// FsyncMode says when a FileSink forces its writes to stable storage.
type FsyncMode string

const (
	// FsyncAlways: every record is fsynced before Write returns.
	FsyncAlways FsyncMode = "always"
	// FsyncInterval: a background fsync every FsyncInterval when records
	// were written since the last one; a crash loses at most that much.
	FsyncInterval FsyncMode = "interval"
	// FsyncNever leaves it to the operating system.
	FsyncNever FsyncMode = "never"
)

// RotatedTimeFormat is the UTC timestamp appended to a rotated file's name
// (Path + "." + timestamp). It has a fixed width, so that sorting rotated
// names sorts them by age.
const RotatedTimeFormat = "20060102T150405.000000000Z"

// probeEvery bounds how often an unhealthy sink tries to recover.
const probeEvery = 100 * time.Millisecond

// ErrSinkClosed is returned by a FileSink after Close.
var ErrSinkClosed = errors.New("audit: file sink is closed")

// FileSinkConfig configures OpenFileSink.
type FileSinkConfig struct {
	// Path is the live file. Its directory must exist. Rotated files are
	// Path + "." + the UTC time (RotatedTimeFormat) and stay next to it.
	Path string
	// Fsync defaults to FsyncAlways.
	Fsync FsyncMode
	// FsyncInterval is the period of FsyncInterval mode; default 1s.
	FsyncInterval time.Duration
	// MaxSize rotates the live file before a write that would take it
	// past MaxSize bytes (a record larger than MaxSize still goes whole
	// into a fresh file: a record is never split). 0 never rotates.
	MaxSize int64
	// ChainKey, when not empty, keys the chain with HMAC-SHA256, so that
	// only a key holder can recompute it; empty means plain SHA-256.
	ChainKey []byte
}

// FileSink is a durable, append-only JSON-lines audit file with a hash
// chain over its records (see the notes in chain.go): one writer per file
// (two processes or two sinks on one path fork the chain).
//
// Recovery and repair decisions:
//
//   - Open continues the chain from the last record of the live file or, if
//     that is empty or missing, of the newest rotated file, so the chain
//     carries across rotation and restarts.
//   - A final line without a newline (a crash mid-write) is cut off at open
//     if it is not valid JSON; if it is a complete chained record that only
//     lacks its newline, the newline is added. Both are reported by
//     Warnings. A complete JSON value that is not a chained record, or a
//     last line without a valid chain, is foreign content: open fails
//     rather than destroy or guess at it.
//   - A failed write or fsync leaves the chain where it was and makes the
//     sink unhealthy; recovery cuts the file back to its last complete
//     record, so a record whose Write failed never stays in the file. In
//     always mode fsyncs are shared (group commit): a failed one rolls the
//     head back to the last record on disk, and every writer whose record
//     was after it gets the error.
//   - The sink notices when Path no longer names the file it has open
//     (removed, renamed, or the directory replaced): Write and Healthy
//     report it once, and recovery creates a new live file and continues
//     the chain there. Records that were in a removed file are gone;
//     verifying without that file reports them as "deleted" at the first
//     line of the new file. A renamed-away file can still be verified in
//     its place (between the rotated files and the new live file).
type FileSink struct {
	cfg FileSinkConfig
	key []byte

	mu        sync.Mutex
	f         *os.File    // the live file; nil after a failed reopen
	fi        os.FileInfo // f's identity, to notice Path naming another file
	size      int64       // bytes in f up to the last complete record
	seq       int64       // the chain's head
	hash      string
	fileSeq   int64 // seq before the first record written to f by this sink
	err       error // non-nil: unhealthy
	cause     error // the failure that made it unhealthy
	lastProbe time.Time
	dirty     bool // records not yet fsynced (interval mode)
	closed    bool
	lastRot   string // newest rotated name, so new names sort after it
	warnings  []string

	// Test hooks; nil in production.
	writeHook func(f *os.File, p []byte) (int, error)
	syncHook  func(f *os.File) error
	now       func() time.Time
	syncs     atomic.Int64
	probes    atomic.Int64

	stop chan struct{}
	done chan struct{}

	// Group commit (always mode): a writer appends its line under mu, then
	// waits in syncThrough until an fsync covers it; one waiter at a time
	// runs the fsync, outside mu, for every line written so far, so
	// concurrent requests share fsyncs instead of queueing behind them.
	// The durable* fields change under mu and syncMu both.
	syncMu      sync.Mutex
	syncCond    *sync.Cond
	syncing     bool    // a waiter is running an fsync
	closing     bool    // Close is running its final fsync
	epoch       int64   // bumped when a failure rolls the head back
	floors      []int64 // floors[e]: durableSeq when epoch e ended
	floorErrs   []error // floorErrs[e]: the failure that ended it
	durableSeq  int64   // the chain head that is on disk
	durableSize int64   // s.size at durableSeq
	durableHash string  // s.hash at durableSeq
}

// OpenFileSink opens (creating it, mode 0600) the live file for appending
// and continues the chain found on disk. The directory must exist.
func OpenFileSink(cfg FileSinkConfig) (*FileSink, error) {
	if cfg.Path == "" {
		return nil, errors.New("audit: file sink: no path")
	}
	switch cfg.Fsync {
	case "":
		cfg.Fsync = FsyncAlways
	case FsyncAlways, FsyncInterval, FsyncNever:
	default:
		return nil, fmt.Errorf("audit: file sink: fsync mode %q: want always, interval or never", cfg.Fsync)
	}
	if cfg.FsyncInterval < 0 {
		return nil, fmt.Errorf("audit: file sink: negative fsync interval %s", cfg.FsyncInterval)
	}
	if cfg.FsyncInterval == 0 {
		cfg.FsyncInterval = time.Second
	}
	if cfg.MaxSize < 0 {
		return nil, fmt.Errorf("audit: file sink: negative max size %d", cfg.MaxSize)
	}
	cfg.Path = filepath.Clean(cfg.Path)
	dir := filepath.Dir(cfg.Path)
	if fi, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("audit: file sink: directory: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("audit: file sink: %s is not a directory", dir)
	}
	s := &FileSink{cfg: cfg, key: bytes.Clone(cfg.ChainKey), hash: GenesisHash, now: time.Now}
	s.syncCond = sync.NewCond(&s.syncMu)
	if err := s.open(); err != nil {
		return nil, err
	}
	s.markDurableLocked() // no other goroutine has s yet
	if cfg.Fsync == FsyncInterval {
		s.stop, s.done = make(chan struct{}), make(chan struct{})
		go s.syncLoop()
	}
	return s, nil
}

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

// openLive opens Path for appending, creating it if need be.
func (s *FileSink) openLive() (*os.File, os.FileInfo, error) {
	_, statErr := os.Lstat(s.cfg.Path)
	f, err := os.OpenFile(s.cfg.Path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
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
		if err := f.Truncate(tornStart); err != nil {
			return 0, nil, fmt.Errorf("audit: file sink: cutting off the incomplete last line of %s: %w", s.cfg.Path, err)
		}
		s.warn(fmt.Sprintf("%s: cut off an incomplete last line (%d bytes at offset %d, not valid JSON: a write interrupted by a crash): %s",
			s.cfg.Path, len(torn), tornStart, quotePrefix(torn, 80)))
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

// Write links r into the chain (setting r.Chain), appends it as one line
// and fsyncs per the mode. Writers are serialised. On error the chain does
// not advance, r.Chain is left as it was, and the sink is unhealthy until
// a recovery succeeds (tried by the next Write or Healthy at once, then at
// most every 100ms).
func (s *FileSink) Write(r *Record) error {
	if r == nil {
		return errors.New("audit: file sink: nil record")
	}
	doc, err := newCanonDoc(r)
	if err != nil {
		return err
	}
	c, epoch, err := s.appendLine(doc)
	if err != nil {
		return err
	}
	if s.cfg.Fsync == FsyncAlways {
		// Outside mu: the fsync is shared with the writers around it.
		if err := s.syncThrough(c.Seq, epoch); err != nil {
			return err
		}
	}
	r.Chain = &c
	return nil
}

// appendLine seals doc into the chain and appends it to the live file,
// rotating first if it would pass MaxSize. It returns the new link and
// the epoch it was written in.
func (s *FileSink) appendLine(doc *canonDoc) (Chain, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.readyLocked(); err != nil {
		return Chain{}, 0, err
	}
	line, c := sealLine(s.key, doc, s.seq, s.hash)
	doc.free()
	if s.cfg.MaxSize > 0 && s.size > 0 && s.size+int64(len(line)) > s.cfg.MaxSize {
		if err := s.rotateLocked(); err != nil {
			return Chain{}, 0, s.failLocked(fmt.Errorf("audit: file sink: rotating %s: %w", s.cfg.Path, err))
		}
	}
	if n, err := s.write(s.f, line); err != nil || n != len(line) {
		if err == nil {
			err = io.ErrShortWrite
		}
		return Chain{}, 0, s.failLocked(fmt.Errorf("audit: file sink: writing %s: %w", s.cfg.Path, err))
	}
	if s.cfg.Fsync == FsyncInterval {
		s.dirty = true
	}
	s.size += int64(len(line))
	s.seq, s.hash = c.Seq, c.Hash
	return c, s.epoch, nil
}

// errRolledBack is returned to writers whose record was written but never
// made durable before the sink failed: the chain was rolled back past it
// and recovery cuts it from the file, so it must be kept elsewhere.
var errRolledBack = errors.New("audit: file sink: the record was not on disk when the file failed; the chain was rolled back past it")

// syncThrough returns once the record seq (written in epoch) is on disk,
// or with an error if a failure rolled the chain back past it. One waiter
// at a time runs an fsync for everything written so far; the others wait
// for it and usually find themselves covered.
func (s *FileSink) syncThrough(seq, epoch int64) error {
	s.syncMu.Lock()
	for {
		if epoch != s.epoch {
			ok, cause := seq <= s.floors[epoch], s.floorErrs[epoch]
			s.syncMu.Unlock()
			if ok {
				return nil
			}
			return fmt.Errorf("%w: %w", errRolledBack, cause)
		}
		if s.durableSeq >= seq {
			s.syncMu.Unlock()
			return nil
		}
		if s.syncing || s.closing {
			s.syncCond.Wait()
			continue
		}
		s.syncing = true
		s.syncMu.Unlock()

		s.mu.Lock()
		f, tSeq, tSize, tHash, tEpoch := s.f, s.seq, s.size, s.hash, s.epoch
		s.mu.Unlock()
		var err error
		if f != nil {
			err = s.sync(f)
		}

		s.mu.Lock()
		if err != nil && s.f == f && !s.closed && s.err == nil {
			s.failLocked(fmt.Errorf("audit: file sink: fsync %s: %w", s.cfg.Path, err))
		}
		s.syncMu.Lock()
		s.syncing = false
		if f != nil && err == nil && tEpoch == s.epoch && tSeq > s.durableSeq {
			s.durableSeq, s.durableSize, s.durableHash = tSeq, tSize, tHash
		}
		s.syncCond.Broadcast()
		s.mu.Unlock()
		// Loop with syncMu held: covered, rolled back, or another round.
	}
}

// markDurableLocked records that everything written is on disk (after an
// fsync under mu, or a change of file) and wakes the writers waiting.
func (s *FileSink) markDurableLocked() {
	s.syncMu.Lock()
	s.durableSeq, s.durableSize, s.durableHash = s.seq, s.size, s.hash
	s.syncCond.Broadcast()
	s.syncMu.Unlock()
}

// Healthy reports whether the next Write can succeed: nil while the last
// write succeeded and Path still names the open file. When unhealthy it
// tries to recover (reopen or recreate the live file, cut back a partial
// write, and write and fsync a probe file beside it, so that a full disk
// or a read-only directory keep it unhealthy): at once after a failure,
// then at most once every 100ms.
func (s *FileSink) Healthy() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.readyLocked()
}

// Head returns the chain's last link: seq 0 and GenesisHash before the
// first record. Logged elsewhere, it lets a later verification tell that
// the end of the file was cut (VerifyOptions.HeadSeq).
func (s *FileSink) Head() (seq int64, hash string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seq, s.hash
}

// Warnings returns what open and recovery repaired or noticed: a cut-off
// torn line, a completed newline, a live file that vanished.
func (s *FileSink) Warnings() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.warnings)
}

// Close fsyncs (unless the mode is never) and closes the live file. A
// record whose write failed is cut off first. Later calls return nil;
// Write and Healthy return ErrSinkClosed.
func (s *FileSink) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	if s.err != nil {
		s.cutBackLocked()
	}
	f := s.f
	s.f = nil
	s.syncMu.Lock()
	s.closing = true
	s.syncMu.Unlock()
	s.mu.Unlock()
	if s.stop != nil {
		close(s.stop)
		<-s.done
	}
	if f == nil {
		return nil
	}
	var err error
	if s.cfg.Fsync != FsyncNever {
		err = s.sync(f)
	}
	// Writers waiting for an fsync learn how the last one went.
	s.mu.Lock()
	if err != nil {
		s.failLocked(fmt.Errorf("audit: file sink: fsync %s at close: %w", s.cfg.Path, err))
	} else {
		s.markDurableLocked()
	}
	s.syncMu.Lock()
	s.closing = false
	s.syncCond.Broadcast()
	s.syncMu.Unlock()
	s.mu.Unlock()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("audit: file sink: closing %s: %w", s.cfg.Path, err)
	}
	return nil
}

// readyLocked is nil when a write may go ahead, recovering if it is time.
func (s *FileSink) readyLocked() error {
	if s.closed {
		return ErrSinkClosed
	}
	if s.err != nil {
		if !s.lastProbe.IsZero() && s.now().Sub(s.lastProbe) < probeEvery {
			return s.err
		}
		return s.recoverLocked()
	}
	if !s.isLiveLocked() {
		err := fmt.Errorf("audit: file sink: %s was removed or replaced while open; records seq %d..%d that were written to it are not in the live file any more",
			s.cfg.Path, s.fileSeq+1, s.seq)
		if s.seq == s.fileSeq {
			err = fmt.Errorf("audit: file sink: %s was removed or replaced while open", s.cfg.Path)
		}
		s.warn(err.Error())
		return s.failLocked(err)
	}
	return nil
}

// isLiveLocked reports whether Path still names the open file.
func (s *FileSink) isLiveLocked() bool {
	if s.f == nil {
		return false
	}
	fi, err := os.Stat(s.cfg.Path)
	return err == nil && os.SameFile(fi, s.fi)
}

// failLocked makes the sink unhealthy with err and returns it. The first
// recovery attempt is not delayed (lastProbe is that of the last probe).
//
// In always mode the head goes back to the last record on disk: records
// written after it were never acknowledged, their writers get an error
// (and keep the record elsewhere), and recovery cuts them from the file.
func (s *FileSink) failLocked(err error) error {
	s.err, s.cause = err, err
	if s.cfg.Fsync != FsyncAlways {
		return err
	}
	s.syncMu.Lock()
	if s.seq != s.durableSeq {
		s.seq, s.size, s.hash = s.durableSeq, s.durableSize, s.durableHash
		s.floors = append(s.floors, s.durableSeq)
		s.floorErrs = append(s.floorErrs, err)
		s.epoch++
		s.syncCond.Broadcast()
	}
	s.syncMu.Unlock()
	return err
}

// cutBackLocked removes what a failed write left after the last complete
// record, if the open file is still the live one.
func (s *FileSink) cutBackLocked() error {
	if s.f == nil || !s.isLiveLocked() {
		return nil
	}
	fi, err := s.f.Stat()
	if err != nil {
		return err
	}
	switch {
	case fi.Size() > s.size:
		if err := s.f.Truncate(s.size); err != nil {
			return err
		}
		if s.cfg.Fsync != FsyncNever {
			return s.sync(s.f)
		}
	case fi.Size() < s.size:
		s.warn(fmt.Sprintf("%s: shrank from %d to %d bytes while open: records were cut from its end", s.cfg.Path, s.size, fi.Size()))
		s.size = fi.Size()
	}
	return nil
}

// recoverLocked tries to make the sink writable again. On success the
// chain continues from the in-memory head: records a removed file held are
// not re-read, so that the gap stays visible to verification.
func (s *FileSink) recoverLocked() error {
	s.lastProbe = s.now()
	s.probes.Add(1)
	fail := func(err error) error {
		s.err = fmt.Errorf("%w (recovery failed: %w)", s.cause, err)
		return s.err
	}
	if err := s.cutBackLocked(); err != nil {
		return fail(fmt.Errorf("cutting back a partial write: %w", err))
	}
	old := s.fi
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
	f, fi, err := s.openLive()
	if err != nil {
		return fail(err)
	}
	size := fi.Size()
	if old == nil || !os.SameFile(fi, old) {
		// A new (or someone else's) file at Path: repair a torn tail but
		// keep the chain we know.
		if size, _, err = s.repairTail(f, fi); err != nil {
			f.Close()
			return fail(err)
		}
		s.fileSeq = s.seq
	}
	if err := s.probe(); err != nil {
		f.Close()
		return fail(err)
	}
	s.f, s.fi, s.size, s.err, s.cause = f, fi, size, nil, nil
	s.markDurableLocked()
	return nil
}

// probe writes and fsyncs a scratch file beside the live file: a full
// disk or an unwritable directory fails it.
func (s *FileSink) probe() error {
	name := s.cfg.Path + ".probe"
	f, err := os.OpenFile(name, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	defer os.Remove(name)
	_, err = s.write(f, make([]byte, 4096))
	if err == nil {
		err = s.sync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	return nil
}

// rotateLocked renames the live file to its rotated name and opens a new
// one. The old file is fsynced first (unless the mode is never).
func (s *FileSink) rotateLocked() error {
	if s.cfg.Fsync != FsyncNever {
		if err := s.sync(s.f); err != nil {
			return err
		}
	}
	name := s.rotatedName()
	if err := os.Rename(s.cfg.Path, name); err != nil {
		return err
	}
	s.lastRot = filepath.Base(name)
	s.f.Close()
	s.f = nil // a failure below leaves no file open: recovery creates it
	s.dirty = false
	f, fi, err := s.openLive()
	if err != nil {
		return err
	}
	s.f, s.fi, s.size, s.fileSeq = f, fi, 0, s.seq
	s.markDurableLocked()
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

// syncLoop is the interval mode's background fsync.
func (s *FileSink) syncLoop() {
	defer close(s.done)
	t := time.NewTicker(s.cfg.FsyncInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		s.mu.Lock()
		f := s.f
		if !s.dirty || f == nil || s.err != nil {
			s.mu.Unlock()
			continue
		}
		s.dirty = false
		s.mu.Unlock()
		// Outside the lock: writers go on while the disk catches up.
		if err := s.sync(f); err != nil {
			s.mu.Lock()
			if s.f == f && s.err == nil && !s.closed {
				s.failLocked(fmt.Errorf("audit: file sink: background fsync %s: %w", s.cfg.Path, err))
			}
			s.mu.Unlock()
		}
	}
}

func (s *FileSink) write(f *os.File, p []byte) (int, error) {
	if s.writeHook != nil {
		return s.writeHook(f, p)
	}
	return f.Write(p)
}

func (s *FileSink) sync(f *os.File) error {
	s.syncs.Add(1)
	if s.syncHook != nil {
		return s.syncHook(f)
	}
	return f.Sync()
}

// syncDir makes a created or renamed name durable; best effort (not
// every platform can fsync a directory).
func (s *FileSink) syncDir() {
	if s.cfg.Fsync == FsyncNever {
		return
	}
	if d, err := os.Open(filepath.Dir(s.cfg.Path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

func (s *FileSink) warn(w string) {
	s.warnings = append(s.warnings, w)
}
