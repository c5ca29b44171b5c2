package forkd

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// probeEnv, set, makes a binary importing this package a probe (see init) and nothing else.
const probeEnv = "EXECUTOR_FORKD_PROBE"

// Probe exit statuses.
const (
	probeClosed = 0  // /proc/1/fd is closed to other processes of the same uid
	probeOpen   = 10 // it is not
)

// init runs the probe when asked, before anything else of the binary (the Go runner's user
// initialisers included) can run.
func init() {
	if os.Getenv(probeEnv) == "" {
		return
	}
	dir, err := os.Open("/proc/1/fd")
	if err == nil {
		_, err = dir.Readdirnames(-1)
	}
	if err != nil {
		os.Exit(probeClosed)
	}
	os.Exit(probeOpen)
}

// procFDsClosed reports whether PID 1's /proc/1/fd is closed to other processes of its uid
// (Linux, PR_SET_DUMPABLE 0): a probe child, this same binary, tries to list it. Anything but
// a clear answer counts as open.
func (s *supervisor) procFDsClosed() bool {
	attr := &os.ProcAttr{
		Env:   []string{probeEnv + "=1"},
		Files: []*os.File{nil, nil, os.Stderr},
		Sys:   &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL},
	}
	probe, err := s.start("/proc/self/exe", []string{"executor-forkd-probe"}, attr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "executor-forkd: probe:", err)
		return false
	}
	select {
	case <-probe.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(probe.pid, syscall.SIGKILL)
		s.await(probe)
		return false
	}
	return probe.status.Exited() && probe.status.ExitStatus() == probeClosed
}

// openVault makes the socket pair that holds the protocol fds while they are sealed.
func (s *supervisor) openVault() error {
	pair, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socketpair: %w", err)
	}
	s.vault = [2]int{pair[0], pair[1]}
	return nil
}

// seal sends the protocol fds into the vault and closes them: while they are in flight no
// process table holds them, so /proc/1/fd cannot reach them.
func (s *supervisor) seal() error {
	rights := syscall.UnixRights(int(s.in.Fd()), int(s.out.Fd()))
	if err := syscall.Sendmsg(s.vault[0], []byte{0}, rights, nil, 0); err != nil {
		return fmt.Errorf("seal the protocol fds: %w", err)
	}
	_ = s.in.Close()
	_ = s.out.Close()
	s.in, s.out = nil, nil
	return nil
}

// unseal takes the protocol fds back out of the vault (no other process is alive).
func (s *supervisor) unseal() error {
	var one [1]byte
	oob := make([]byte, syscall.CmsgSpace(2*4))
	_, oobn, _, _, err := syscall.Recvmsg(s.vault[1], one[:], oob, syscall.MSG_CMSG_CLOEXEC)
	if err != nil {
		return fmt.Errorf("unseal the protocol fds: %w", err)
	}
	messages, err := syscall.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(messages) != 1 {
		return errors.New("unseal the protocol fds: no control message")
	}
	fds, err := syscall.ParseUnixRights(&messages[0])
	if err != nil || len(fds) != 2 {
		return errors.New("unseal the protocol fds: not two fds")
	}
	for _, fd := range fds {
		syscall.CloseOnExec(fd)
	}
	s.in = os.NewFile(uintptr(fds[0]), "requests")
	s.out = os.NewFile(uintptr(fds[1]), "protocol")
	return nil
}
