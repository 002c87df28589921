package resetguard

import "testing"

// TestRedactURL: the status route never shows a bundle service
// credential carried in the URL.
func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://bundles.example.com", "https://bundles.example.com"},
		{"https://user:s3cret@bundles.example.com/base", "https://bundles.example.com/base"},
		{"https://bundles.example.com/base?token=s3cret#frag", "https://bundles.example.com/base"},
		{"http://[::1", "(unparsable URL)"},
	}
	for _, tt := range tests {
		if got := redactURL(tt.in); got != tt.want {
			t.Errorf("redactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestOutcomeCounts: each (type, outcome) lands in its own counter, and a
// handler used without Provision (nil counts) does not panic.
func TestOutcomeCounts(t *testing.T) {
	c := new(outcomeCounts)
	for _, e := range [][2]string{{"allowed", "success"}, {"allowed", "success"}, {"allowed", "failure"}, {"allowed", "unknown"}, {"denied", "failure"}, {"denied", "unknown"}} {
		c.add(e[0], e[1])
	}
	got := [5]int64{c.allowedSuccess.Load(), c.allowedFailure.Load(), c.allowedUnknown.Load(), c.deniedFailure.Load(), c.deniedOther.Load()}
	if got != [5]int64{2, 1, 1, 1, 1} {
		t.Errorf("counts %v, want [2 1 1 1 1]", got)
	}
	var none *outcomeCounts
	none.add("allowed", "success")
}
