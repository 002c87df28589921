package main

import (
	"strings"
	"testing"
)

func TestParsePerfCounts(t *testing.T) {
	for _, tc := range []struct {
		name, out string
		want      int64
		wantErr   string
	}{
		{name: "counted", want: 496, out: "# started on Wed Dec  2 22:11:53 2026\n\n" +
			"490,,syscalls:sys_enter_fsync,2006636937,100.00,,\n6,,syscalls:sys_enter_fdatasync,2006636937,100.00,,\n"},
		// The process never ran while counted: it made no call.
		{name: "not counted", want: 0, out: "<not counted>,,syscalls:sys_enter_fsync,0,100.00,,\n" +
			"<not counted>,,syscalls:sys_enter_fdatasync,0,100.00,,\n"},
		{name: "not supported", wantErr: "not supported", out: "<not supported>,,syscalls:sys_enter_fsync,0,100.00,,\n" +
			"0,,syscalls:sys_enter_fdatasync,0,100.00,,\n"},
		{name: "an event missing", wantErr: "1 of 2", out: "3,,syscalls:sys_enter_fsync,0,100.00,,\n"},
		{name: "empty", wantErr: "0 of 2", out: ""},
		{name: "garbled count", wantErr: "count of", out: "x,,syscalls:sys_enter_fsync,0,100.00,,\n0,,syscalls:sys_enter_fdatasync,0,100.00,,\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parsePerfCounts(tc.out)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %d, %v; want error %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}
