package forkd

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	ipcPrivate = 0
	ipcCreat   = 0o1000
	ipcRmid    = 0
)

// ipcKind is one System V IPC mechanism.
type ipcKind struct {
	name   string
	listed string // its /proc/sysvipc file
	get    func() (int, error)
	remove func(id int) error
}

var ipcKinds = []ipcKind{
	{
		name:   "shm",
		listed: "/proc/sysvipc/shm",
		get: func() (int, error) {
			return ipcCall(syscall.SYS_SHMGET, ipcPrivate, uintptr(os.Getpagesize()), ipcCreat|0o600)
		},
		remove: func(id int) error {
			_, err := ipcCall(syscall.SYS_SHMCTL, uintptr(id), ipcRmid, 0)
			return err
		},
	},
	{
		name:   "sem",
		listed: "/proc/sysvipc/sem",
		get: func() (int, error) {
			return ipcCall(syscall.SYS_SEMGET, ipcPrivate, 1, ipcCreat|0o600)
		},
		remove: func(id int) error {
			_, err := ipcCall(syscall.SYS_SEMCTL, uintptr(id), 0, ipcRmid)
			return err
		},
	},
	{
		name:   "msg",
		listed: "/proc/sysvipc/msg",
		get: func() (int, error) {
			return ipcCall(syscall.SYS_MSGGET, ipcPrivate, ipcCreat|0o600, 0)
		},
		remove: func(id int) error {
			_, err := ipcCall(syscall.SYS_MSGCTL, uintptr(id), ipcRmid, 0)
			return err
		},
	},
}

func ipcCall(nr, a1, a2, a3 uintptr) (int, error) {
	r, _, errno := syscall.Syscall6(nr, a1, a2, a3, 0, 0, 0)
	if errno != 0 {
		return -1, errno
	}
	return int(r), nil
}

// ipcCleaner removes every System V IPC object of the container's IPC namespace.
//
// Linux lists them in /proc/sysvipc. gVisor has no such files; it numbers the objects of each
// mechanism in sequence (1, 2, ...), so there the cleaner makes a probe object, whose id is
// past every object made since the last cleanup, and removes every id in between.
type ipcCleaner struct {
	last [3]int // per kind, the probe id of the last cleanup (fallback only)
}

func (c *ipcCleaner) clean(deadline time.Time) error {
	_, err := os.Stat("/proc/sysvipc")
	listed := err == nil
	for i, kind := range ipcKinds {
		if listed {
			err = removeListed(kind)
		} else {
			err = c.removeInSequence(i, kind, deadline)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// removeListed removes every object /proc/sysvipc lists, then checks that none is left.
func removeListed(kind ipcKind) error {
	ids, err := listedIDs(kind.listed)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := kind.remove(id); err != nil && !errors.Is(err, syscall.EINVAL) {
			return fmt.Errorf("remove System V %s %d: %w", kind.name, id, err)
		}
	}
	if ids, err = listedIDs(kind.listed); err != nil {
		return err
	}
	if len(ids) > 0 {
		return fmt.Errorf("System V %s objects left: %v", kind.name, ids)
	}
	return nil
}

// listedIDs reads the ids (second column) of a /proc/sysvipc file.
func listedIDs(path string) ([]int, error) {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var ids []int
	lines := strings.Split(string(data), "\n")
	for _, line := range lines[1:] { // the first line is the header
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		id, err := strconv.Atoi(fields[1])
		if err != nil {
			return nil, fmt.Errorf("read %s: bad line %q", path, line)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// maxSequenceScan bounds the ids scanned at one cleanup when /proc/sysvipc is missing.
const maxSequenceScan = 1 << 20

func (c *ipcCleaner) removeInSequence(i int, kind ipcKind, deadline time.Time) error {
	probe, err := kind.get()
	if errors.Is(err, syscall.ENOSYS) {
		return nil // no System V IPC here at all
	}
	if err != nil {
		return fmt.Errorf("System V %s probe: %w", kind.name, err)
	}
	defer func() { _ = kind.remove(probe) }()
	low := c.last[i]
	if probe <= low || probe-low > maxSequenceScan {
		return fmt.Errorf("System V %s ids out of sequence (%d after %d)", kind.name, probe, low)
	}
	for id := low; id < probe; id++ {
		if id%4096 == 0 && time.Now().After(deadline) {
			return fmt.Errorf("System V %s: out of time at id %d", kind.name, id)
		}
		if err := kind.remove(id); err != nil && !errors.Is(err, syscall.EINVAL) {
			return fmt.Errorf("remove System V %s %d: %w", kind.name, id, err)
		}
	}
	c.last[i] = probe
	return nil
}
