package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/amigate/packer-plugin-amigate/internal/awsim"
)

// runSim serves the simulated AWS until interrupted.
func runSim(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("amigate sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:4566", "loopback `ADDRESS:PORT` to listen on")
	worldFile := fs.String("world", "", "JSON world `FILE` to start from (docs/sim.md)")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: amigate sim [--listen 127.0.0.1:PORT] [--world FILE]\n\n"+
			"Serves the simulated AWS (docs/sim.md) on a loopback address until Ctrl-C.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitBadInput
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "amigate sim: unexpected argument %q\n", fs.Arg(0))
		return exitBadInput
	}
	sim := awsim.New()
	if *worldFile != "" {
		f, err := os.Open(*worldFile)
		if err != nil {
			fmt.Fprintf(stderr, "amigate sim: --world %q: %v\n", *worldFile, errors.Unwrap(err))
			return exitBadInput
		}
		err = sim.LoadWorld(f)
		f.Close()
		if err != nil {
			fmt.Fprintf(stderr, "amigate sim: --world %q: %v\n", *worldFile, err)
			return exitBadInput
		}
	}
	url, err := sim.Start(ctx, *listen)
	if err != nil {
		fmt.Fprintf(stderr, "amigate sim: --listen %q: %v\n", *listen, err)
		return exitBadInput
	}
	fmt.Fprintf(stdout, "listening on %s (access key SIM<account id>, any secret)\n", url)
	<-ctx.Done()
	if err := sim.Close(); err != nil {
		fmt.Fprintf(stderr, "amigate sim: stop: %v\n", err)
		return exitRuntime
	}
	return exitOK
}
