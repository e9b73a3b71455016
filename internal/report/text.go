// Package report renders amigate's verdicts and findings for people and
// tools: text, JSON, JUnit XML and Markdown are views of the same data.
package report

import (
	"fmt"
	"io"
	"strings"

	"github.com/amigate/packer-plugin-amigate/keypolicy"
)

// Marks used in text output.
const (
	markOK   = "✔"
	markFail = "✘"
	markWarn = "!"
)

// WriteVerdictText writes a verdict for people: the key, one line per
// target and path, then every finding with its fix, then a summary.
func WriteVerdictText(w io.Writer, v keypolicy.Verdict) {
	fmt.Fprintf(w, "key %s (%s, %s)\n", v.Key.ARN, orUnknown(v.Key.Manager), orUnknown(v.Key.State))
	for _, f := range v.Findings {
		writeFinding(w, "", f)
	}
	fmt.Fprintln(w)
	width := 0
	for _, t := range v.Targets {
		for _, p := range t.Paths {
			width = max(width, len(p.Path))
		}
	}
	total, failed := 0, 0
	for _, t := range v.Targets {
		for _, p := range t.Paths {
			total++
			mark := markOK
			if !p.OK {
				mark = markFail
				failed++
			}
			fmt.Fprintf(w, "%s %s  %-*s  %s\n", mark, t.Account, width, p.Path, p.Principal)
		}
	}
	if hasPathFindings(v) {
		fmt.Fprintln(w)
	}
	for _, t := range v.Targets {
		for _, p := range t.Paths {
			for _, f := range p.Findings {
				writeFinding(w, fmt.Sprintf("%s %s: ", t.Account, p.Path), f)
			}
		}
	}
	fmt.Fprintln(w)
	switch {
	case v.OK:
		fmt.Fprintf(w, "%s every path passes (%d)\n", markOK, total)
	case failed == 0:
		fmt.Fprintf(w, "%s the key itself fails; %d of %d paths fail\n", markFail, failed, total)
	default:
		fmt.Fprintf(w, "%s %d of %d paths fail\n", markFail, failed, total)
	}
}

func writeFinding(w io.Writer, prefix string, f keypolicy.Finding) {
	mark := markFail
	if f.Severity != keypolicy.SeverityError {
		mark = markWarn
	}
	fmt.Fprintf(w, "%s %s%s", mark, prefix, f.Code)
	if len(f.Actions) > 0 {
		fmt.Fprintf(w, " (%s)", strings.Join(f.Actions, ", "))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "    %s\n", f.Message)
	if f.Fix != "" {
		fmt.Fprintf(w, "    fix: %s\n", f.Fix)
	}
}

func hasPathFindings(v keypolicy.Verdict) bool {
	for _, t := range v.Targets {
		for _, p := range t.Paths {
			if len(p.Findings) > 0 {
				return true
			}
		}
	}
	return false
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
