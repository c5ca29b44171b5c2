// Package function (fork mode, tests/runners/test_forkd.py): System V IPC objects do not
// outlive a call. Creates a shared memory segment, a semaphore set and a message queue under a
// fixed key (and one of each without a key), leaves them behind, and answers whether the keyed
// ones already existed: false three times on every call when the cleanup removes them.
package function

import (
	"encoding/json"
	"errors"
	"syscall"
)

const (
	key       = 0x45584543 // "EXEC"
	ipcCreat  = 0o1000
	ipcExcl   = 0o2000
	ipcPrivat = 0
)

func create(nr uintptr, key, a2, flags uintptr) (existed bool, err error) {
	var errno syscall.Errno
	if nr == syscall.SYS_MSGGET {
		_, _, errno = syscall.Syscall(nr, key, flags, 0)
	} else {
		_, _, errno = syscall.Syscall(nr, key, a2, flags)
	}
	if errno == 0 {
		return false, nil
	}
	if errors.Is(errno, syscall.EEXIST) {
		return true, nil
	}
	return false, errno
}

func Execute(input json.RawMessage) (any, error) {
	out := map[string]any{}
	for _, kind := range []struct {
		name string
		nr   uintptr
		a2   uintptr
	}{
		{"shm_existed", syscall.SYS_SHMGET, 4096},
		{"sem_existed", syscall.SYS_SEMGET, 1},
		{"msg_existed", syscall.SYS_MSGGET, 0},
	} {
		existed, err := create(kind.nr, key, kind.a2, ipcCreat|ipcExcl|0o600)
		if err != nil {
			return nil, err
		}
		if _, err := create(kind.nr, ipcPrivat, kind.a2, ipcCreat|0o600); err != nil {
			return nil, err
		}
		out[kind.name] = existed
	}
	return out, nil
}
