package audit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
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
//     if it is not valid JSON, after its bytes are saved beside the file,
//     and a repair record that retires its seq is appended (torn.go); if it
//     is a complete chained record that only lacks its newline, the newline
//     is added. Both are reported by Warnings.
//   - Open appends an outcome (unknown, gateway_restarted) for every intent
//     that no outcome names, so that a crash leaves no intent open
//     (intents.go). A complete JSON value that is not a chained record, or a
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

	// Write-ahead bookkeeping (stats.go, torn.go, intents.go).
	stats   sinkStats // published without mu, for Stats
	opening bool      // open is running: a torn line cut now is this chain's
	torn    []Repair  // torn lines cut at open, each to get a repair record
	opened  []*Record // records OpenFileSink appended (OpenRecords)
}

// withDefaults fills in the defaults and checks the bounds, so that a bad
// config fails at open with an error that names the setting.
func (cfg FileSinkConfig) withDefaults() (FileSinkConfig, error) {
	if cfg.Path == "" {
		return cfg, errors.New("audit: file sink: no path")
	}
	switch cfg.Fsync {
	case "":
		cfg.Fsync = FsyncAlways
	case FsyncAlways, FsyncInterval, FsyncNever:
	default:
		return cfg, fmt.Errorf("audit: file sink: fsync mode %q: want always, interval or never", cfg.Fsync)
	}
	if cfg.FsyncInterval < 0 {
		return cfg, fmt.Errorf("audit: file sink: negative fsync interval %s", cfg.FsyncInterval)
	}
	if cfg.FsyncInterval == 0 {
		cfg.FsyncInterval = time.Second
	}
	if cfg.MaxSize < 0 {
		return cfg, fmt.Errorf("audit: file sink: negative max size %d", cfg.MaxSize)
	}
	cfg.Path = filepath.Clean(cfg.Path)
	dir := filepath.Dir(cfg.Path)
	if fi, err := os.Stat(dir); err != nil {
		return cfg, fmt.Errorf("audit: file sink: directory: %w", err)
	} else if !fi.IsDir() {
		return cfg, fmt.Errorf("audit: file sink: %s is not a directory", dir)
	}
	return cfg, nil
}

// OpenFileSink opens (creating it, mode 0600) the live file for appending
// and continues the chain found on disk. The directory must exist.
func OpenFileSink(cfg FileSinkConfig) (*FileSink, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &FileSink{cfg: cfg, key: bytes.Clone(cfg.ChainKey), hash: GenesisHash, now: time.Now}
	s.syncCond = sync.NewCond(&s.syncMu)
	s.opening = true
	err = s.open()
	s.opening = false
	if err != nil {
		return nil, err
	}
	s.markDurableLocked() // no other goroutine has s yet
	s.publishLocked()
	if cfg.Fsync == FsyncInterval {
		s.stop, s.done = make(chan struct{}), make(chan struct{})
		go s.syncLoop()
	}
	// Repair records and the outcomes of intents a stop left open go
	// through Write like any record, before anyone else can write.
	if err := s.closeOpenEnds(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
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
	defer s.publishLocked()
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
	s.publishLocked()
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
