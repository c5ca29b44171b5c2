// Package fdswap keeps the original stdin and stdout for the protocol and gives user code
// harmless ones: fd 1 points at stderr and fd 0 reads /dev/null.
//
// It does so in its init function, at the file-descriptor level, so fmt.Println, os.Stdout and
// child processes writing to fd 1 land on stderr, and nothing the user runs can swallow
// requests. The command imports it before the user's package (and the import path sorts
// before it), so it runs before the user's initialisers.
package fdswap

import (
	"fmt"
	"os"
	"syscall"
)

// Protocol is the original stdout (close-on-exec), or nil when Err is set.
var Protocol *os.File

// Requests is the original stdin (close-on-exec), or nil when Err is set.
var Requests *os.File

// Err reports why the swap failed.
var Err error

func init() {
	fd, err := syscall.Dup(1)
	if err != nil {
		Err = fmt.Errorf("dup stdout: %w", err)
		return
	}
	syscall.CloseOnExec(fd)
	// dup3 exists on every Linux architecture (arm64 lacks dup2).
	if err := syscall.Dup3(2, 1, 0); err != nil {
		Err = fmt.Errorf("point stdout at stderr: %w", err)
		return
	}
	Protocol = os.NewFile(uintptr(fd), "protocol")

	in, err := syscall.Dup(0)
	if err != nil {
		Err = fmt.Errorf("dup stdin: %w", err)
		return
	}
	syscall.CloseOnExec(in)
	null, err := syscall.Open("/dev/null", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		Err = fmt.Errorf("open /dev/null: %w", err)
		return
	}
	if err := syscall.Dup3(null, 0, 0); err != nil {
		Err = fmt.Errorf("point stdin at /dev/null: %w", err)
		return
	}
	syscall.Close(null)
	Requests = os.NewFile(uintptr(in), "requests")
}
