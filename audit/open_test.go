package audit

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFileSinkTornTail: what a crash mid-write leaves at the end of the
// live file, at the next open.
func TestFileSinkTornTail(t *testing.T) {
	cs := fixtureEntity(t)
	tests := []struct {
		name    string
		damage  func(b []byte) []byte
		warning string // "" : open fails with wantErr
		wantErr string
	}{
		{"half a record", func(b []byte) []byte { return append(b, `{"@timestamp":"2026-11-25T10:00:`...) }, "cut off an incomplete last line", ""},
		{"zeros after a power loss", func(b []byte) []byte { return append(b, make([]byte, 300)...) }, "cut off an incomplete last line", ""},
		{"record without its newline", func(b []byte) []byte { return b[:len(b)-1] }, "lacked its newline", ""},
		{"foreign JSON without a newline", func(b []byte) []byte { return append(b, `{"note":"hand-written"}`...) }, "", "JSON but not a chained record"},
		{"foreign last line", func(b []byte) []byte { return append(b, "{\"note\":\"hand-written\"}\n"...) }, "", "cannot continue the chain"},
		{"text last line", func(b []byte) []byte { return append(b, "# rotated by hand\n"...) }, "", "cannot continue the chain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			s := fsOpen(t, FileSinkConfig{Path: path})
			fsWrite(t, s, cs, 1, 5)
			s.Close()
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, tt.damage(bytes.Clone(b)), 0o600); err != nil {
				t.Fatal(err)
			}
			s, err = OpenFileSink(FileSinkConfig{Path: path})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("open: %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if w := s.Warnings(); len(w) != 1 || !strings.Contains(w[0], tt.warning) {
				t.Errorf("warnings %q, want one containing %q", w, tt.warning)
			}
			if got, _ := os.ReadFile(path); !bytes.Equal(got, b) {
				t.Errorf("file after repair differs from the intact file (%d vs %d bytes)", len(got), len(b))
			}
			if seq, _ := s.Head(); seq != 5 {
				t.Errorf("head seq %d, want 5", seq)
			}
			fsWrite(t, s, cs, 6, 8)
			s.Close()
			fsWantOK(t, fsVerify(t, VerifyOptions{}, path), 8)
		})
	}
}
