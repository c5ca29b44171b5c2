// Package entry turns the Go runner binary into its own fork-mode supervisor.
//
// The runner command imports it right after fdswap and before the user's package (the import
// path sorts before it too), so its init function runs before any user initialiser:
//
//   - In fork mode (EXECUTOR_SERVE=fork or --fork) it runs package forkd and never returns:
//     the supervisor is PID 1 for good and no user code ever runs in it. Its spares are this
//     same binary, re-executed through /proc/self/exe without the fork flag, so one-shot.
//   - In a spare (EXECUTOR_READY_FD set) it makes the process the OOM killer's first choice
//     (oom_score_adj 1000) before the user's initialisers can start anything, then, with
//     EXECUTOR_GATE_FD set, waits for the supervisor's byte on that fd: the supervisor may
//     start a spare while the last call's process is still being torn down, and opens the
//     gate once the cleanup is confirmed, so no user initialiser runs before it.
package entry

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"

	"executor.local/runner/fdswap"
	"executor.local/runner/forkd"
)

func init() {
	if value := os.Getenv("EXECUTOR_READY_FD"); value != "" {
		// Raw system calls: os.WriteFile would start the runtime's network poller in every
		// spare (epoll, a pipe, and the idle threads polling it) for this one write.
		if fd, err := syscall.Open("/proc/self/oom_score_adj", syscall.O_WRONLY|syscall.O_CLOEXEC, 0); err == nil {
			_, _ = syscall.Write(fd, []byte("1000"))
			_ = syscall.Close(fd)
		}
		// Nothing the user's initialisers start may inherit the readiness pipe.
		if fd, err := strconv.Atoi(value); err == nil && fd > 2 {
			syscall.CloseOnExec(fd)
		}
		waitAtGate()
		return
	}
	if !forkd.IsForkMode(os.Args[1:]) {
		return
	}
	if fdswap.Err != nil {
		fmt.Fprintln(os.Stderr, "executor runner:", fdswap.Err)
		os.Exit(forkd.ExitInternal)
	}
	forkd.Run(forkd.Config{
		Path:     "/proc/self/exe",
		Argv:     []string{os.Args[0]},
		Runner:   "go",
		Gated:    true,
		Requests: fdswap.Requests,
		Protocol: fdswap.Protocol,
	})
}

// waitAtGate blocks until the supervisor writes the gate's byte (EXECUTOR_GATE_FD), then closes
// the gate; a gate closed without it means the supervisor dropped this spare.
func waitAtGate() {
	value, set := os.LookupEnv("EXECUTOR_GATE_FD")
	if !set {
		return
	}
	_ = os.Unsetenv("EXECUTOR_GATE_FD")
	fd, err := strconv.Atoi(value)
	if err != nil || fd < 3 {
		return
	}
	var one [1]byte
	n, err := syscall.Read(fd, one[:])
	for errors.Is(err, syscall.EINTR) {
		n, err = syscall.Read(fd, one[:])
	}
	_ = syscall.Close(fd)
	if n != 1 {
		os.Exit(forkd.ExitInternal)
	}
}
