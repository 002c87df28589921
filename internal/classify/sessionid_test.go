package classify

import (
	"errors"
	"net/http"
	"testing"

	"github.com/resetguard/caddy-resetguard/internal/refusal"
)

// sessionIDCase is one id string and whether SessionID takes it.
type sessionIDCase struct {
	in   string
	want int32 // 0: refused
}

var sessionIDCases = []sessionIDCase{
	{"1", 1},
	{"427", 427},
	{"0427", 427},
	{"00000000000000000001", 1},
	{"2147483647", 2147483647},
	{"02147483647", 2147483647},
	{"0", 0},
	{"00", 0},
	{"", 0},
	{"-1", 0},
	{"-0", 0},
	{"+5", 0},
	{"2147483648", 0},
	{"4294967297", 0},
	{"9999999999", 0},
	{"99999999999", 0},
	{"1e3", 0},
	{" 5", 0},
	{"5 ", 0},
	{"5\n", 0},
	{"4 2", 0},
	{"0x10", 0},
	{"1_000", 0},
	{"1.0", 0},
	{"abc", 0},
	{"٣", 0}, // ARABIC-INDIC DIGIT THREE
	{"３", 0}, // FULLWIDTH DIGIT THREE
}

func TestSessionID(t *testing.T) {
	for _, tc := range sessionIDCases {
		got, err := SessionID(tc.in)
		switch {
		case tc.want == 0 && err == nil:
			t.Errorf("SessionID(%q) = %d, nil; want an error", tc.in, got)
		case tc.want == 0 && !errors.Is(err, errBadSessionID):
			t.Errorf("SessionID(%q) error = %v, want errBadSessionID", tc.in, err)
		case tc.want != 0 && (err != nil || got != tc.want):
			t.Errorf("SessionID(%q) = %d, %v; want %d, nil", tc.in, got, err, tc.want)
		}
	}
}

// TestPathSessionID: the REST route's id segment gives the id or the one
// refusal for a bad id, with a fixed message that holds no request data.
func TestPathSessionID(t *testing.T) {
	for _, tc := range sessionIDCases {
		id, ref := PathSessionID(tc.in)
		if tc.want != 0 {
			if ref != nil || id != tc.want {
				t.Errorf("PathSessionID(%q) = %d, %v; want %d, nil", tc.in, id, ref, tc.want)
			}
			continue
		}
		switch {
		case ref == nil:
			t.Errorf("PathSessionID(%q) = %d, nil; want a refusal", tc.in, id)
		case id != 0 || ref.Status != http.StatusBadRequest || ref.Reason() != refusal.BadSessionID || ref.Message != msgBadSessionID:
			t.Errorf("PathSessionID(%q) = %d, %d %q %q; want 0, 400 %q %q", tc.in, id, ref.Status, ref.Reason(), ref.Message, refusal.BadSessionID, msgBadSessionID)
		case !errors.Is(ref, errBadSessionID):
			t.Errorf("PathSessionID(%q): refusal %v does not wrap errBadSessionID", tc.in, ref)
		}
	}
}
