package audit

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestIdentityCheck: the check names what changed.
func TestIdentityCheck(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "logs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "audit.log")
	s := fsOpen(t, FileSinkConfig{Path: path})
	id := *s.pubID.Load()
	if err := id.check(path, dir); err != nil {
		t.Fatalf("check of the open file: %v", err)
	}
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := id.check(path, dir); err == nil || !strings.Contains(fmt.Sprint(err), "names another file") {
		t.Errorf("another file at the path: %v", err)
	}
	if err := os.Rename(dir, dir+".old"); err != nil {
		t.Fatal(err)
	}
	if err := id.check(path, dir); err == nil || !strings.Contains(fmt.Sprint(err), "its directory is gone") {
		t.Errorf("directory gone: %v", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if now, err := statID(dir); err == nil && !now.same(id.dir) {
		if err := id.check(path, dir); err == nil || !strings.Contains(fmt.Sprint(err), "no longer the directory") {
			t.Errorf("new directory: %v", err)
		}
	}
}

// BenchmarkIdentityCheck is the cost the sink adds before every write:
// stat of the directory and of the path, compared with the open file.
// BenchmarkOSStatSameFile is what it replaced (one os.Stat and
// os.SameFile, without the directory).
func BenchmarkIdentityCheck(b *testing.B) {
	path := filepath.Join(b.TempDir(), "audit.log")
	s, err := OpenFileSink(FileSinkConfig{Path: path})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	id, dir := *s.pubID.Load(), filepath.Dir(path)
	b.ReportAllocs()
	for b.Loop() {
		if err := id.check(path, dir); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOSStatSameFile(b *testing.B) {
	path := filepath.Join(b.TempDir(), "audit.log")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		b.Fatal(err)
	}
	open, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		fi, err := os.Stat(path)
		if err != nil || !os.SameFile(fi, open) {
			b.Fatal(err)
		}
	}
}

// BenchmarkFileSinkHealthy is the status route's and every guarded
// request's question.
func BenchmarkFileSinkHealthy(b *testing.B) {
	s, err := OpenFileSink(FileSinkConfig{Path: filepath.Join(b.TempDir(), "audit.log")})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Healthy(); err != nil {
			b.Fatal(err)
		}
	}
}
