package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/resetguard/caddy-resetguard/audit"
)

// verifyOptions are the flags and arguments of `audit verify`.
type verifyOptions struct {
	Files []string
	// KeyFile holds the chain key (chain_key), for a keyed chain.
	KeyFile string
	// WithRotated adds each file's rotated siblings (file.<timestamp>).
	WithRotated bool
	// Partial accepts a chain that starts above seq 1.
	Partial bool
	// Head is "<seq>" or "<seq>:<hash>": a link the chain is known to
	// have reached.
	Head string
}

func newAuditVerifyCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "verify [--key-file <file>] [--with-rotated=false] [--partial] [--head <seq>[:<hash>]] <file>...",
		Short: "Verifies the hash chain of audit files",
		Long: `
Verifies the hash chain of the durable audit file: every line is a record in
canonical JSON with resetguard.chain {seq, prev, hash}; seq goes up by one from
1, prev is the hash of the record before, and hash recomputes over the record
(HMAC-SHA256 under the chain key when the file was written with one: give it
with --key-file, whose trailing newline is ignored).

Each <file> is read after its rotated siblings (<file>.<UTC timestamp>, sorted
by name, i.e. oldest first) unless --with-rotated=false; several files are
read in the order given. The first problem is named with its kind:

  edited     a record's content or chain changed (or the wrong key)
  deleted    records are missing (the seq range is given)
  inserted   a line that does not belong in the chain
  reordered  seq goes backwards (two records swapped)
  malformed  not a chained JSON record, or the file ends mid-record

--partial accepts a chain whose first record is above seq 1 (older files
archived). Cutting whole records from the end of the last file leaves a
shorter chain that is still intact: --head <seq>[:<hash>], taken from an
earlier "OK" line, makes that a "deleted" problem.

Prints "OK: N records in M files, chain intact (last seq S, hash H)" and exits
0, or "FAIL: <kind> at FILE:LINE (seq S): <detail>" and exits 2; exits 1 when
a file cannot be read.

After OK, a line "WARNING: N intent(s) without an outcome: seq a, b, ..."
names intent records (written before a reset is forwarded) that no outcome
names yet: requests in flight, or a gateway that stopped and has not restarted
since (its next start records each as outcome unknown, gateway_restarted).
It does not change the exit code. A line "NOTE: N repair record(s)" counts
torn last lines the sink cut (and saved beside the file, <file>.torn-<time>)
when it opened; the one seq a repair record skips (retired_seq) is not a gap.
`,
		Args: cobra.MinimumNArgs(1),
	}
	f := c.Flags()
	f.StringP("key-file", "k", "", "file holding the chain key (chain_key) of a keyed chain")
	f.Bool("with-rotated", true, "also verify each file's rotated siblings <file>.<timestamp>, oldest first")
	f.Bool("partial", false, "accept a chain that starts above seq 1 (older files archived)")
	f.String("head", "", "<seq>[:<hash>] the chain is known to have reached (from an earlier OK line)")
	c.RunE = cobraRun(func(c *cobra.Command, fl caddycmd.Flags) (int, error) {
		opts := verifyOptions{
			Files:       fl.Args(),
			KeyFile:     fl.String("key-file"),
			WithRotated: fl.Bool("with-rotated"),
			Partial:     fl.Bool("partial"),
			Head:        fl.String("head"),
		}
		return runAuditVerify(opts, c.OutOrStdout())
	})
	return c
}

// runAuditVerify verifies and prints the one-line verdict.
func runAuditVerify(opts verifyOptions, stdout io.Writer) (int, error) {
	vo := audit.VerifyOptions{Partial: opts.Partial}
	if opts.KeyFile != "" {
		key, err := os.ReadFile(opts.KeyFile)
		if err != nil {
			return exitError, fmt.Errorf("reading the chain key: %w", err)
		}
		key = bytes.TrimRight(key, "\r\n")
		if len(key) == 0 {
			return exitError, fmt.Errorf("key file %s is empty", opts.KeyFile)
		}
		vo.Key = key
	}
	if opts.Head != "" {
		seq, hash, _ := strings.Cut(opts.Head, ":")
		n, err := strconv.ParseInt(seq, 10, 64)
		if err != nil || n < 1 {
			return exitError, fmt.Errorf("--head %q: want <seq>[:<hash>] with a positive seq", opts.Head)
		}
		vo.HeadSeq, vo.HeadHash = n, hash
	}
	files, err := expandAuditFiles(opts.Files, opts.WithRotated)
	if err != nil {
		return exitError, err
	}
	rep, err := audit.Verify(vo, files...)
	if err != nil {
		return exitError, err
	}
	if p := rep.FirstProblem; p != nil {
		fmt.Fprintf(stdout, "FAIL: %s at %s:%d (seq %d): %s\n", p.Kind, p.File, p.Line, p.Seq, p.Detail)
		return exitVerdict, nil
	}
	fmt.Fprintf(stdout, "OK: %d records in %d files, chain intact (last seq %d, hash %s)\n", rep.Records, rep.Files, rep.LastSeq, rep.LastHash)
	printWriteAhead(stdout, rep)
	return exitOK, nil
}

// maxListedSeqs bounds the seqs printed for open intents.
const maxListedSeqs = 20

// printWriteAhead adds what an intact chain says about the write-ahead
// protocol: intents still without an outcome (not a chain problem: the
// exit code stays 0) and repair records.
func printWriteAhead(stdout io.Writer, rep audit.VerifyReport) {
	if rep.OpenIntents > 0 {
		seqs := rep.OpenIntentSeqs
		var list []string
		for _, seq := range seqs[:min(len(seqs), maxListedSeqs)] {
			list = append(list, strconv.FormatInt(seq, 10))
		}
		if len(seqs) > maxListedSeqs {
			list = append(list, fmt.Sprintf("… (%d more)", len(seqs)-maxListedSeqs))
		}
		fmt.Fprintf(stdout, "WARNING: %d intent(s) without an outcome: seq %s (requests in flight, or the gateway stopped and has not reopened the file since: its next start records each as outcome unknown, reason gateway_restarted)\n",
			rep.OpenIntents, strings.Join(list, ", "))
	}
	if rep.Repairs > 0 {
		fmt.Fprintf(stdout, "NOTE: %d repair record(s): a torn last line cut when the sink opened, its bytes saved beside the file (see resetguard.repair)\n", rep.Repairs)
	}
}

// expandAuditFiles puts each file after its rotated siblings (oldest
// first) when withRotated, dropping repeats. Every file named must exist:
// a missing live file is an error, not an empty chain.
func expandAuditFiles(files []string, withRotated bool) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	add := func(f string) {
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			return nil, err
		}
		if fi.IsDir() {
			return nil, fmt.Errorf("%s is a directory, not an audit file", f)
		}
		if withRotated {
			rotated, err := audit.RotatedFiles(f)
			if err != nil {
				return nil, err
			}
			for _, r := range rotated {
				add(r)
			}
		}
		add(f)
	}
	if len(out) == 0 {
		return nil, errors.New("no audit files given")
	}
	return out, nil
}
