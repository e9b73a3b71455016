// Command amigate checks, outside Packer, that other accounts can launch an
// AMI encrypted with a KMS key, and says how to fix it when they cannot.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/amigate/packer-plugin-amigate/version"
)

// Exit codes shared by every subcommand (DESIGN §3.1).
const (
	exitOK         = 0
	exitGateSaysNo = 1
	exitBadInput   = 2
	exitRuntime    = 3
)

// command runs a subcommand and returns its exit code.
type command func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int

var commands = map[string]command{
	"audit":    runAudit,
	"check":    runCheck,
	"cleanup":  runCleanup,
	"demo":     runDemo,
	"diagnose": runDiagnose,
	"lint":     runLint,
	"sim":      runSim,
}

const usage = `usage: amigate <command> [flags]

commands:
  audit     check AMIs already released, changing nothing: shares, keys, key policies, grants
  check     gate AMIs: check their keys, share them, patch the key policy, grant, verify
  cleanup   delete what test launches of runs killed hard left behind
  demo      show the gate finding and fixing the first write-up's failure, on the simulated AWS
  diagnose  find the KMS denials of failed launches in CloudTrail, with the fix
  lint      check a key policy and grants offline for the targets' launch paths
  sim       serve the simulated AWS on loopback
  version   print the version

Run "amigate <command> -h" for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitBadInput
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return exitOK
	case "version", "--version":
		if len(args) > 1 {
			fmt.Fprintf(stderr, "amigate version: unexpected argument %q\n", args[1])
			return exitBadInput
		}
		fmt.Fprintln(stdout, "amigate", version.PluginVersion.FormattedVersion())
		return exitOK
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "amigate: unknown command %q\n\n%s", args[0], usage)
		return exitBadInput
	}
	return cmd(ctx, args[1:], stdin, stdout, stderr)
}
