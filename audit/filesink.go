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
	// WriteTimeout bounds every disk call of the sink (write, fsync,
	// rotation, recovery) and a Write's wait for the writer lock. A call
	// that has not returned by then marks the sink unhealthy at once (a
	// frozen or hung disk): Write and Healthy then fail without waiting,
	// and a Write waiting for an fsync stuck that long fails without its
	// record being acknowledged. Default DefaultWriteTimeout (2s).
	WriteTimeout time.Duration
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
//     was after it gets the error. A seq is handed out again only once the
//     lines that held it are cut from the one file they were written to;
//     if they cannot be cut from a file that moved away, the chain
//     continues after them. So no seq ever names two different records.
//   - Every disk call is timed (WriteTimeout): one that does not return in
//     time marks the sink unhealthy at once, by a watchdog, not the stuck
//     goroutine; Healthy, Head and Warnings never wait for the writer, and
//     Write fails at once while the sink is unhealthy or stalled. When the
//     stuck call returns, the sink treats it as a failure and recovers as
//     above.
//   - Before every write the sink checks (two stat calls) that Path still
//     names the open file and that Path's directory is still the one it
//     opened the file in (device and inode). If not (the file or directory
//     renamed or removed, the directory replaced or lazily unmounted), it
//     fsyncs the records already in the open file, so they stay in the
//     chain where the file went, and refuses ("audit file moved or
//     unmounted"). It resumes by itself only in that same directory: in
//     the open file if Path names it again, else in a new file at Path
//     whose first record links (seq, prev) to the last one of the moved
//     file, so verifying the moved file then the new one passes, and the
//     new one alone reports the moved records as missing. A directory that
//     is not the one it opened (a new directory at the path, the disk
//     under an unmounted mount point) is never written to until the same
//     directory is back or Reopen (a config reload) adopts it.
type FileSink struct {
	cfg FileSinkConfig
	key []byte
	dir string // filepath.Dir(cfg.Path)

	// mu is the writer lock, held for every append, rotation, recovery and
	// close; the watchdog times how long it is held (see writerLock).
	mu        writerLock
	f         *os.File    // the live file; nil after a failed reopen
	fi        os.FileInfo // f's FileInfo at open
	id        identity    // f's and its directory's identity, checked before every write
	size      int64       // bytes in f up to the last complete record
	seq       int64       // the chain's head
	hash      string
	written   headLink // the last record whose line went whole to f (see settleOldFileLocked)
	fileSeq   int64    // seq before the first record written to f by this sink
	err       error    // non-nil: unhealthy
	cause     error    // the failure that made it unhealthy
	lastProbe time.Time
	dirty     bool // records not yet fsynced (interval mode)
	closed    bool
	adoptDir  bool   // Reopen: recovery takes the directory now at the path
	lastRot   string // newest rotated name, so new names sort after it
	hasher    chainHasher

	warnMu   sync.Mutex // never held across a disk call
	warnings []string

	// Published for the lock-free readers (Healthy, Write's fast refusal).
	health      atomic.Pointer[sinkHealth]
	pubID       atomic.Pointer[identity]
	idGen       atomic.Uint64 // odd while the open file is being changed
	probeAt     atomic.Int64  // UnixNano when the next recovery attempt may run
	closedFlag  atomic.Bool
	maintaining atomic.Bool // a background recovery started by Healthy is running

	// The watchdog (watchdog.go).
	base  time.Time
	lanes [numLanes]lane

	// Test hooks; nil in production.
	writeHook func(f *os.File, p []byte) (int, error)
	syncHook  func(f *os.File) error
	now       func() time.Time
	syncs     atomic.Int64
	probes    atomic.Int64

	stop chan struct{} // interval mode's fsync loop
	done chan struct{}

	// Group commit (always mode, groupcommit.go): a writer appends its line
	// under mu, then waits in waitDurable until an fsync covers it; the
	// flusher goroutine fsyncs everything written so far, so concurrent
	// requests share fsyncs, and a stuck fsync holds up no writer past the
	// watchdog's bound. syncMu is never held across a disk call, nor while
	// taking mu; the fields below change under it.
	syncMu      sync.Mutex
	flushCond   *sync.Cond // the flusher waits for work
	doneCond    *sync.Cond // writers wait for durability
	stopFlush   bool
	flushDone   chan struct{}
	tip         fileHead // mirror of (f, seq, size, hash): what the flusher syncs
	epoch       int64    // bumped when a failure rolls the head back
	floors      []int64  // floors[e]: durableSeq when epoch e ended
	floorErrs   []error  // floorErrs[e]: the failure that ended it
	durableSeq  int64    // the chain head that is on disk
	durableSize int64    // s.size at durableSeq
	durableHash string   // s.hash at durableSeq
	// fault is a failure declared outside mu (a stall, a failed fsync), not
	// yet applied by a holder of mu; faultPending mirrors it for a cheap
	// check before every write.
	fault        error
	faultPending atomic.Bool
	stallErr     [numLanes]error // a lane's stall while it lasts
	stallWake    chan struct{}   // closed at the next stall, for lock waiters
	muErr        error           // s.err, for publishing

	// Write-ahead bookkeeping (stats.go, torn.go, intents.go).
	stats   sinkStats // published without mu, for Stats
	opening bool      // open is running: a torn line cut now is this chain's
	torn    []Repair  // torn lines cut at open, each to get a repair record
	opened  []*Record // records OpenFileSink appended (OpenRecords)
}

// headLink is a chain position.
type headLink struct {
	seq  int64
	hash string
}

// fileHead is the chain's head with the file and size it is at.
type fileHead struct {
	f    *os.File
	seq  int64
	size int64
	hash string
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
	if cfg.WriteTimeout < 0 {
		return cfg, fmt.Errorf("audit: file sink: negative write timeout %s", cfg.WriteTimeout)
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
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
	s := &FileSink{cfg: cfg, key: bytes.Clone(cfg.ChainKey), dir: filepath.Dir(cfg.Path), hash: GenesisHash, now: time.Now}
	s.mu = writerLock{ch: make(chan struct{}, 1), s: s}
	s.flushCond = sync.NewCond(&s.syncMu)
	s.doneCond = sync.NewCond(&s.syncMu)
	s.startWatchdog()
	s.opening = true
	err = s.open()
	s.opening = false
	if err != nil {
		s.stopWatchdog()
		return nil, err
	}
	dirID, err := statID(s.dir)
	if err != nil {
		s.f.Close()
		s.stopWatchdog()
		return nil, fmt.Errorf("audit: file sink: directory: %w", err)
	}
	// No other goroutine has s yet.
	s.id = identity{file: fileIDOf(s.fi), dir: dirID}
	s.pubID.Store(&identity{file: s.id.file, dir: s.id.dir})
	s.written = headLink{s.seq, s.hash}
	s.markDurableLocked()
	s.publishLocked()
	switch cfg.Fsync {
	case FsyncAlways:
		s.flushDone = make(chan struct{})
		go s.flushLoop()
	case FsyncInterval:
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
// a recovery succeeds (tried by the next Write at once, then at most every
// 100ms). While the sink is unhealthy and no recovery is due, or a disk
// call is stalled, Write fails at once; it waits at most WriteTimeout for
// the writer lock, and in always mode returns an error, its record not
// acknowledged, when the fsync that would cover it stalls.
func (s *FileSink) Write(r *Record) error {
	if r == nil {
		return errors.New("audit: file sink: nil record")
	}
	if err := s.refuseFast(); err != nil {
		return err
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
		if err := s.waitDurable(c.Seq, epoch); err != nil {
			return err
		}
	}
	r.Chain = &c
	return nil
}

// refuseFast is Write's answer without the writer lock: closed, stalled,
// or unhealthy with no recovery attempt due.
func (s *FileSink) refuseFast() error {
	if s.closedFlag.Load() {
		return ErrSinkClosed
	}
	if h := s.health.Load(); h.err != nil && (h.stalled || !s.probeDue()) {
		return h.err
	}
	return nil
}

// appendLine seals doc into the chain and appends it to the live file,
// rotating first if it would pass MaxSize. It returns the new link and
// the epoch it was written in.
func (s *FileSink) appendLine(doc *canonDoc) (Chain, int64, error) {
	// The line is built in doc's buffer, which goes back to the pool
	// once the line is written (or not).
	defer doc.free()
	if err := s.mu.lockWithin(s.cfg.WriteTimeout); err != nil {
		return Chain{}, 0, err
	}
	defer s.mu.Unlock()
	defer s.publishLocked()
	if err := s.readyLocked(); err != nil {
		return Chain{}, 0, err
	}
	line, c := s.hasher.seal(s.key, doc, s.seq, s.hash)
	if s.cfg.MaxSize > 0 && s.size > 0 && s.size+int64(len(line)) > s.cfg.MaxSize {
		if err := s.rotateLocked(); err != nil {
			return Chain{}, 0, s.failLocked(fmt.Errorf("audit: file sink: rotating %s: %w", s.cfg.Path, err))
		}
	}
	n, err := s.write(s.f, line)
	if n == len(line) {
		// In the file, even if the write then failed: see settleOldFileLocked.
		s.written = headLink{c.Seq, c.Hash}
	}
	if err != nil || n != len(line) {
		if err == nil {
			err = io.ErrShortWrite
		}
		return Chain{}, 0, s.failLocked(fmt.Errorf("audit: file sink: writing %s: %w", s.cfg.Path, err))
	}
	epoch, err := s.commitLineLocked(c, int64(len(line)))
	return c, epoch, err
}

// commitLineLocked advances the head past a line just written, unless a
// failure was declared while it was being written (a stall, a failed
// fsync): then the line is void, like the others after the last durable
// record, and recovery cuts it.
func (s *FileSink) commitLineLocked(c Chain, n int64) (int64, error) {
	s.syncMu.Lock()
	if s.fault != nil {
		s.syncMu.Unlock()
		return 0, s.applyFaultLocked()
	}
	s.size += n
	s.seq, s.hash = c.Seq, c.Hash
	s.tip = fileHead{f: s.f, seq: s.seq, size: s.size, hash: s.hash}
	epoch := s.epoch
	if s.cfg.Fsync == FsyncAlways {
		s.flushCond.Signal()
	}
	s.syncMu.Unlock()
	if s.cfg.Fsync == FsyncInterval {
		s.dirty = true
	}
	return epoch, nil
}

// Healthy reports whether the next Write can succeed: nil while the last
// write succeeded and Path still names the open file. It never waits for
// the writer or for a disk call: it reads the state the sink publishes
// and, when healthy, compares what Path and its directory name with the
// open file (two stat calls), so it answers within a few milliseconds
// even while a write is stuck in the kernel. When unhealthy and a
// recovery attempt is due (at once after a failure, then at most once
// every 100ms) it starts one in the background: reopen or recreate the
// live file, cut back a partial write, and write and fsync a probe file
// beside it, so that a full disk or a read-only directory keep it
// unhealthy.
func (s *FileSink) Healthy() error {
	if s.closedFlag.Load() {
		return ErrSinkClosed
	}
	if h := s.health.Load(); h.err != nil {
		if !h.stalled && s.probeDue() {
			s.maintain()
		}
		return h.err
	}
	if err := s.checkPublishedIdentity(); err != nil {
		s.maintain()
		return err
	}
	return nil
}

// maintain runs, in the background and one at a time, what a Write would
// do first under the writer lock: apply a failure, recover if due, or
// notice that the file moved.
func (s *FileSink) maintain() {
	if !s.maintaining.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer s.maintaining.Store(false)
		s.mu.Lock()
		defer s.mu.Unlock()
		s.readyLocked()
	}()
}

// Head returns the chain's last link: seq 0 and GenesisHash before the
// first record. Logged elsewhere, it lets a later verification tell that
// the end of the file was cut (VerifyOptions.HeadSeq). It does not wait
// for the writer.
func (s *FileSink) Head() (seq int64, hash string) {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	return s.tip.seq, s.tip.hash
}

// Warnings returns what open and recovery repaired or noticed: a cut-off
// torn line, a completed newline, a live file that moved or vanished. It
// does not wait for the writer.
func (s *FileSink) Warnings() []string {
	s.warnMu.Lock()
	defer s.warnMu.Unlock()
	return slices.Clone(s.warnings)
}

func (s *FileSink) write(f *os.File, p []byte) (int, error) {
	s.labelLane(laneWriter, &opWrite)
	if s.writeHook != nil {
		return s.writeHook(f, p)
	}
	return f.Write(p)
}

// sync is an fsync under the writer lock.
func (s *FileSink) sync(f *os.File) error {
	s.labelLane(laneWriter, &opFsync)
	return s.fsync(f)
}

func (s *FileSink) fsync(f *os.File) error {
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
	s.labelLane(laneWriter, &opFsync)
	if d, err := os.Open(s.dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

func (s *FileSink) warn(w string) {
	s.warnMu.Lock()
	defer s.warnMu.Unlock()
	s.warnings = append(s.warnings, w)
}
