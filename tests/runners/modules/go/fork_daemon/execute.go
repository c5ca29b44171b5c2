// Package function (fork mode): {"spawn": true} starts a detached process (own session,
// SIGTERM ignored) that sleeps input.seconds (default 2) then writes "fork_daemon: survived
// cleanup" to stderr, and answers {"spawned": true} once that process runs. {"check": true} answers the pids in /proc
// other than 1 and its own, sorted: [] when the cleanup after the previous call killed it.
//
// The image has no shell: the daemon is this binary again (/proc/self/exe), which this
// package's init turns into the daemon when FORK_DAEMON_SECONDS is set.
package function

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strconv"
	"syscall"
	"time"
)

func init() {
	value, ok := os.LookupEnv("FORK_DAEMON_SECONDS")
	if !ok {
		return
	}
	signal.Ignore(syscall.SIGTERM)
	running := os.NewFile(3, "running") // tell the task we run
	_, _ = running.Write([]byte{1})
	_ = running.Close()
	seconds, _ := strconv.ParseFloat(value, 64)
	time.Sleep(time.Duration(seconds * float64(time.Second)))
	fmt.Fprintln(os.Stderr, "fork_daemon: survived cleanup")
	for {
		time.Sleep(time.Hour)
	}
}

func Execute(input json.RawMessage) (any, error) {
	in := struct {
		Spawn   bool    `json:"spawn"`
		Check   bool    `json:"check"`
		Seconds float64 `json:"seconds"`
	}{Seconds: 2}
	if err := json.Unmarshal(input, &in); err != nil {
		return nil, err
	}
	switch {
	case in.Check:
		return otherPids()
	case in.Spawn:
		runningR, runningW, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		defer runningR.Close()
		daemon := exec.Command("/proc/self/exe")
		daemon.Env = append(os.Environ(), "FORK_DAEMON_SECONDS="+strconv.FormatFloat(in.Seconds, 'g', -1, 64))
		daemon.Stderr = os.Stderr
		daemon.ExtraFiles = []*os.File{runningW}
		daemon.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		err = daemon.Start()
		runningW.Close()
		if err != nil {
			return nil, err
		}
		var one [1]byte
		n, _ := runningR.Read(one[:])
		_ = daemon.Process.Release()
		return map[string]any{"spawned": n == 1}, nil
	}
	return nil, nil
}

func otherPids() ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	pids := []int{}
	for _, entry := range entries {
		pid, err := strconv.Atoi(entry.Name())
		if err == nil && pid != 1 && pid != os.Getpid() {
			pids = append(pids, pid)
		}
	}
	sort.Ints(pids)
	return pids, nil
}
