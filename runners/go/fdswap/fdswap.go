// Package fdswap keeps the original stdout for protocol responses and points fd 1 at stderr.
//
// It does so in its init function, at the file-descriptor level, so fmt.Println, os.Stdout and
// child processes writing to fd 1 land on stderr. The command imports it before the user's
// package (and the import path sorts before it), so it runs before the user's initialisers.
package fdswap

import (
	"fmt"
	"os"
	"syscall"
)

// Protocol is the original stdout (close-on-exec), or nil when Err is set.
var Protocol *os.File

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
}
