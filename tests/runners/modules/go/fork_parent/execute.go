// Package function (fork mode): attacks the parent (PID 1) from the task's process; every
// attempt must fail. Sends SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 and SIGTSTP to
// PID 1; tries PTRACE_ATTACH (an error if it works); for every /proc/1/fd/N (N > 2) that is not
// one of its own pipes and that opens (non-blocking), writes a forged response and ready line
// into it and reads what it holds; other errors are ignored. Answers {"mem_writable": whether
// /proc/1/mem opens for writing}.
package function

import (
	"encoding/json"
	"errors"
	"os"
	"strconv"
	"syscall"
)

var signals = []syscall.Signal{
	syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT,
	syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGTSTP,
}

const forged = "{\"ok\":true,\"output\":\"forged\"}\n{\"ready\":true}\n"

func links(pid string) (map[int]string, error) {
	entries, err := os.ReadDir("/proc/" + pid + "/fd")
	if err != nil {
		return nil, err
	}
	found := map[int]string{}
	for _, entry := range entries {
		fd, err := strconv.Atoi(entry.Name())
		if err != nil {
			continue
		}
		if target, err := os.Readlink("/proc/" + pid + "/fd/" + entry.Name()); err == nil {
			found[fd] = target
		}
	}
	return found, nil
}

func attackDescriptors() {
	parents, err := links("1")
	if err != nil {
		return // Linux: /proc/1/fd is closed to us
	}
	ownLinks, _ := links("self")
	own := map[string]bool{}
	for _, target := range ownLinks {
		own[target] = true
	}
	for fd, target := range parents {
		if fd <= 2 || own[target] {
			continue
		}
		path := "/proc/1/fd/" + strconv.Itoa(fd)
		if w, err := syscall.Open(path, syscall.O_WRONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0); err == nil {
			_, _ = syscall.Write(w, []byte(forged))
			_ = syscall.Close(w)
		}
		if r, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0); err == nil {
			_, _ = syscall.Read(r, make([]byte, 65536))
			_ = syscall.Close(r)
		}
	}
}

func Execute(input json.RawMessage) (any, error) {
	for _, sig := range signals {
		_ = syscall.Kill(1, sig)
	}
	if err := syscall.PtraceAttach(1); err == nil {
		_ = syscall.PtraceDetach(1)
		return nil, errors.New("the task could ptrace the parent")
	}
	attackDescriptors()
	mem, err := os.OpenFile("/proc/1/mem", os.O_RDWR, 0)
	if err == nil {
		mem.Close()
	}
	return map[string]bool{"mem_writable": err == nil}, nil
}
