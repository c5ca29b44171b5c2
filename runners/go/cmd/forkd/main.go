// Command executor-forkd is the fork-mode supervisor (package forkd) for runners that cannot
// fork themselves, such as Node's:
//
//	executor-forkd [--runner NAME] -- CMD [ARG...]
//
// It must be PID 1 (the container's init). Each spare is CMD, a one-shot runner, started with
// stdin and stdout on private pipes, stderr relayed to the container's stderr (what it writes
// while loading is held until its call starts), EXECUTOR_READY_FD set and EXECUTOR_SERVE
// removed. NAME only labels the ready lines.
package main

// fdswap comes first: the protocol fds are kept close-on-exec and fds 0 and 1 are made
// harmless before anything else runs.
import _ "executor.local/runner/fdswap"

import (
	"fmt"
	"os"
	"os/exec"
	"strings"

	"executor.local/runner/fdswap"
	"executor.local/runner/forkd"
)

const usage = "usage: executor-forkd [--runner NAME] -- CMD [ARG...]"

func main() {
	args := os.Args[1:]
	runner := ""
	for len(args) > 0 && args[0] != "--" {
		switch {
		case args[0] == "--runner" && len(args) > 1:
			runner, args = args[1], args[2:]
		case strings.HasPrefix(args[0], "--runner="):
			runner, args = strings.TrimPrefix(args[0], "--runner="), args[1:]
		default:
			fmt.Fprintln(os.Stderr, usage)
			os.Exit(forkd.ExitNotInit)
		}
	}
	if len(args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(forkd.ExitNotInit)
	}
	argv := args[1:]
	path, err := exec.LookPath(argv[0])
	if err != nil && os.Getpid() == 1 {
		fmt.Fprintln(os.Stderr, "executor-forkd:", err)
		os.Exit(forkd.ExitInternal)
	}
	if fdswap.Err != nil {
		fmt.Fprintln(os.Stderr, "executor-forkd:", fdswap.Err)
		os.Exit(forkd.ExitInternal)
	}
	if path == "" {
		path = argv[0]
	}
	forkd.Run(forkd.Config{
		Path:     path,
		Argv:     argv,
		Runner:   runner,
		Requests: fdswap.Requests,
		Protocol: fdswap.Protocol,
	})
}
