package report

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/amigate/packer-plugin-amigate/internal/gate"
	"github.com/amigate/packer-plugin-amigate/internal/launch"
	"github.com/amigate/packer-plugin-amigate/keypolicy"
)

// WriteSummary writes a gate run's final table for people: one row per
// target, region and path, then what changed and the outcome.
func WriteSummary(w io.Writer, r *gate.Report) {
	if line := organizationLine(r); line != "" {
		fmt.Fprintln(w, line)
	}
	for _, f := range r.Findings {
		writeFinding(w, "", f)
	}
	rows := [][]string{{"", "target", "region", "path", "principal"}}
	for _, t := range r.Targets {
		for _, p := range t.Paths {
			mark := markOK
			if !p.OK {
				mark = markFail
			}
			rows = append(rows, []string{mark, t.Account, p.Region, string(p.Path), p.Principal})
		}
	}
	if len(rows) > 1 {
		writeTable(w, rows)
	}
	for _, t := range r.Targets {
		for _, p := range t.Paths {
			for _, f := range p.Findings {
				writeFinding(w, fmt.Sprintf("%s %s %s: ", t.Account, p.Region, p.Path), f)
			}
		}
	}
	for _, l := range r.Launches {
		fmt.Fprintf(w, "%s test launch (%s) in %s %s%s: %s\n", mark(l.OK), l.Mode, l.Account, l.Region, groupOf(l.Group), launchResult(l))
	}
	c := r.Changes
	verb := "changed"
	if r.DryRun {
		verb = "would change (dry run)"
	}
	fmt.Fprintf(w, "%s: %d launch permission(s), %d snapshot permission(s), %d key policies, %d grant(s)\n",
		verb, len(c.LaunchPermissions), len(c.SnapshotPermissions), len(c.KeyPolicies), len(c.Grants))
	failed, total := countPaths(r)
	switch {
	case r.Error != "":
		fmt.Fprintf(w, "%s no verdict: the run stopped on an error: %s\n", markFail, r.Error)
	case r.OK:
		fmt.Fprintf(w, "%s every target can launch the image (%d paths)\n", markOK, total)
	case total == 0 || failed == 0:
		// The error findings above are about the image, the key or the
		// run itself (a dry run's unverified assumptions), not a path.
		fmt.Fprintf(w, "%s the gate says no: %d finding(s) above (%d paths pass)\n", markFail, errorFindings(r), total)
	default:
		fmt.Fprintf(w, "%s %d of %d paths fail\n", markFail, failed, total)
	}
}

// organizationLine says how many accounts the organization targets gave,
// and names those left out; "" without organization targets.
func organizationLine(r *gate.Report) string {
	o := r.Organization
	if o == nil {
		return ""
	}
	line := fmt.Sprintf("organization %s: %d account(s) gated", o.ID, o.Accounts)
	if len(o.Excluded) > 0 {
		line += ", excluded " + strings.Join(o.Excluded, ", ")
	}
	var skipped []string
	for _, s := range o.Skipped {
		skipped = append(skipped, s.Account+" ("+s.State+")")
	}
	if len(skipped) > 0 {
		line += ", skipped " + strings.Join(skipped, ", ")
	}
	return line
}

func mark(ok bool) string {
	if ok {
		return markOK
	}
	return markFail
}

func groupOf(g string) string {
	if g == "" {
		return ""
	}
	return " (group " + g + ")"
}

func launchResult(l launch.Outcome) string {
	if l.OK {
		return l.InstanceID + " in service after " + l.Took.Round(time.Millisecond).String()
	}
	return l.Reason
}

func countPaths(r *gate.Report) (failed, total int) {
	for _, t := range r.Targets {
		for _, p := range t.Paths {
			total++
			if !p.OK {
				failed++
			}
		}
	}
	return failed, total
}

// writeTable aligns columns with two spaces between them.
func writeTable(w io.Writer, rows [][]string) {
	widths := make([]int, len(rows[0]))
	for _, row := range rows {
		for i, cell := range row {
			widths[i] = max(widths[i], len([]rune(cell)))
		}
	}
	for _, row := range rows {
		var b strings.Builder
		for i, cell := range row {
			if i == len(row)-1 {
				b.WriteString(cell)
				break
			}
			b.WriteString(cell + strings.Repeat(" ", widths[i]-len([]rune(cell))+2))
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}

// WriteJSON writes the report as the JSON report file holds it.
func WriteJSON(w io.Writer, r *gate.Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	ClassName string        `xml:"classname,attr"`
	Failure   *junitFailure `xml:"failure,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

// WriteJUnit writes one test case per target, region and path (and one for
// the image and key checks), for CI systems that show JUnit results.
func WriteJUnit(w io.Writer, r *gate.Report) error {
	doc := junitSuites{Name: "amigate"}
	checks := junitSuite{Name: "amigate.keys"}
	for _, im := range r.Images {
		c := junitCase{Name: im.Region + "/" + im.ID, ClassName: "amigate.keys"}
		var failing []keypolicy.Finding
		for _, f := range r.Findings {
			if f.Severity == keypolicy.SeverityError && mentions(f, im) {
				failing = append(failing, f)
			}
		}
		c.Failure = junitFailureOf(failing)
		checks.Cases = append(checks.Cases, c)
	}
	if r.Error != "" {
		checks.Cases = append(checks.Cases, junitCase{Name: "run", ClassName: "amigate.keys",
			Failure: &junitFailure{Message: "the run stopped on an error", Type: "ERROR", Text: r.Error}})
	}
	doc.Suites = append(doc.Suites, checks)
	for _, t := range r.Targets {
		s := junitSuite{Name: "amigate.target." + t.Account}
		for _, p := range t.Paths {
			c := junitCase{Name: p.Region + "/" + string(p.Path), ClassName: "amigate.target." + t.Account, SystemOut: "principal " + p.Principal + "\nkey " + p.Key + "\nimage " + p.Image}
			var failing []keypolicy.Finding
			for _, f := range p.Findings {
				if f.Severity == keypolicy.SeverityError {
					failing = append(failing, f)
				}
			}
			c.Failure = junitFailureOf(failing)
			s.Cases = append(s.Cases, c)
		}
		doc.Suites = append(doc.Suites, s)
	}
	for i := range doc.Suites {
		s := &doc.Suites[i]
		s.Tests = len(s.Cases)
		for _, c := range s.Cases {
			if c.Failure != nil {
				s.Failures++
			}
		}
		doc.Tests += s.Tests
		doc.Failures += s.Failures
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// mentions reports whether an image- or key-level finding is about an image
// (its id, a snapshot of it or its key appears in the message).
func mentions(f keypolicy.Finding, im gate.ImageInfo) bool {
	if strings.Contains(f.Message, im.ID) {
		return true
	}
	for _, s := range im.Snapshots {
		if strings.Contains(f.Message, s.ID) || (s.Key != "" && strings.Contains(f.Message, s.Key)) {
			return true
		}
	}
	return false
}

func junitFailureOf(fs []keypolicy.Finding) *junitFailure {
	if len(fs) == 0 {
		return nil
	}
	codes := make([]string, len(fs))
	var text strings.Builder
	for i, f := range fs {
		codes[i] = f.Code
		fmt.Fprintf(&text, "%s: %s\nfix: %s\n", f.Code, f.Message, f.Fix)
	}
	return &junitFailure{Message: strings.Join(codes, ", "), Type: codes[0], Text: text.String()}
}

// WriteMarkdown writes a summary for a pull request or a CI job page.
func WriteMarkdown(w io.Writer, r *gate.Report) {
	status := markOK + " every target can launch the image"
	switch {
	case r.Error != "":
		status = markFail + " no verdict, the run stopped on an error"
	case !r.OK:
		status = markFail + " the gate says no"
	}
	fmt.Fprintf(w, "## amigate: %s\n\n", status)
	if r.Error != "" {
		fmt.Fprintf(w, "```\n%s\n```\n\n", r.Error)
	}
	if r.DryRun {
		fmt.Fprintln(w, "_Dry run: the changes below were computed, not made._")
		fmt.Fprintln(w)
	}
	if line := organizationLine(r); line != "" {
		fmt.Fprintln(w, line)
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "| image | region | key |")
	fmt.Fprintln(w, "|---|---|---|")
	for _, im := range r.Images {
		keys := []string{}
		for _, s := range im.Snapshots {
			if s.Key == "" {
				keys = append(keys, "unencrypted "+s.ID)
			} else if !contains(keys, "`"+s.Key+"`") {
				keys = append(keys, "`"+s.Key+"`")
			}
		}
		fmt.Fprintf(w, "| `%s` | %s | %s |\n", im.ID, im.Region, strings.Join(keys, "<br>"))
	}
	fmt.Fprintln(w)
	if len(r.Targets) > 0 {
		fmt.Fprintln(w, "| | target | region | path | principal | findings |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|")
		for _, t := range r.Targets {
			for _, p := range t.Paths {
				mark := markOK
				if !p.OK {
					mark = markFail
				}
				var codes []string
				for _, f := range p.Findings {
					codes = append(codes, f.Code)
				}
				fmt.Fprintf(w, "| %s | %s | %s | %s | `%s` | %s |\n", mark, t.Account, p.Region, p.Path, p.Principal, strings.Join(codes, ", "))
			}
		}
		fmt.Fprintln(w)
	}
	if len(r.Launches) > 0 {
		fmt.Fprintln(w, "| | test launch | target | region | result |")
		fmt.Fprintln(w, "|---|---|---|---|---|")
		for _, l := range r.Launches {
			fmt.Fprintf(w, "| %s | %s%s | %s | %s | %s |\n", mark(l.OK), l.Mode, groupOf(l.Group), l.Account, l.Region, strings.ReplaceAll(launchResult(l), "|", "\\|"))
		}
		fmt.Fprintln(w)
	}
	var problems []string
	for _, f := range r.Findings {
		problems = append(problems, fmt.Sprintf("- **%s** %s  \n  fix: `%s`", f.Code, f.Message, f.Fix))
	}
	for _, t := range r.Targets {
		for _, p := range t.Paths {
			for _, f := range p.Findings {
				problems = append(problems, fmt.Sprintf("- **%s** (%s %s %s) %s  \n  fix: `%s`", f.Code, t.Account, p.Region, p.Path, f.Message, f.Fix))
			}
		}
	}
	if len(problems) > 0 {
		fmt.Fprintln(w, "### Findings")
		fmt.Fprintln(w)
		fmt.Fprintln(w, strings.Join(problems, "\n"))
		fmt.Fprintln(w)
	}
	c := r.Changes
	if c.Count() > 0 {
		fmt.Fprintln(w, "### Changes")
		fmt.Fprintln(w)
		for _, lp := range c.LaunchPermissions {
			fmt.Fprintf(w, "- launch permission on `%s` (%s) for %s\n", lp.Resource, lp.Region, strings.Join(lp.Added, ", "))
		}
		for _, sp := range c.SnapshotPermissions {
			fmt.Fprintf(w, "- create-volume permission on `%s` (%s) for %s\n", sp.Resource, sp.Region, strings.Join(sp.Added, ", "))
		}
		for _, kp := range c.KeyPolicies {
			fmt.Fprintf(w, "- key policy of `%s`:\n\n```diff\n%s```\n", kp.Key, kp.Diff)
		}
		for _, g := range c.Grants {
			fmt.Fprintf(w, "- grant `%s` on `%s` for `%s` (from the %s account)\n", g.Name, g.Key, g.Grantee, g.From)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// WriteFiles writes the report files that are asked for (empty names are
// skipped): JSON, JUnit XML and Markdown.
func WriteFiles(r *gate.Report, jsonFile, junitFile, markdownFile string) error {
	for _, out := range []struct {
		name  string
		write func(io.Writer) error
	}{
		{jsonFile, func(w io.Writer) error { return WriteJSON(w, r) }},
		{junitFile, func(w io.Writer) error { return WriteJUnit(w, r) }},
		{markdownFile, func(w io.Writer) error { WriteMarkdown(w, r); return nil }},
	} {
		if out.name == "" {
			continue
		}
		if err := writeFile(out.name, out.write); err != nil {
			return err
		}
	}
	return nil
}

// CheckFile reports why a report could not be written to name (""
// is no report), so that a bad path is found before the gate changes
// anything: a folder, or a file in a folder that does not exist.
func CheckFile(name string) error {
	if name == "" {
		return nil
	}
	if info, err := os.Stat(name); err == nil && info.IsDir() {
		return errors.New("is a folder, not a file")
	}
	dir := filepath.Dir(name)
	if info, err := os.Stat(dir); err != nil || !info.IsDir() {
		return fmt.Errorf("folder %s does not exist", dir)
	}
	return nil
}

func writeFile(name string, write func(io.Writer) error) error {
	f, err := os.Create(name)
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("write report %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write report %s: %w", name, err)
	}
	return nil
}

// errorFindings counts the report's own error findings (not the paths').
func errorFindings(r *gate.Report) int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity == keypolicy.SeverityError {
			n++
		}
	}
	return n
}
