// Package forkd is the fork-mode supervisor of the executor runners (docs/RUNNERS.md, "Fork
// mode"): PID 1 of a container that serves many calls, each in a fresh process.
//
// The supervisor never runs user code. It keeps one *spare* started: a one-shot runner (the
// command it was given) that has loaded the user module and waits for its request on a private
// pipe. Per request line it hands the whole line (less "log_marker", which it handles itself)
// to the spare, reads the spare's private response pipe while waiting for it to exit (bounded
// by the request's "timeout" and "max_output_bytes"), kills every other process, writes the
// log marker (after all the task's stderr, which it relays) and one answer, then cleans the
// container (the writable paths emptied, System V IPC objects removed), starts the next spare
// and writes a ready line. Standard library only.
//
// Sealed mode: the protocol fds must be out of the tasks' reach. On Linux PR_SET_DUMPABLE 0
// closes /proc/1/fd to them; gVisor ignores it (any process of the same uid can open
// /proc/1/fd/N and forge or steal protocol lines). A probe at start-up tells; where /proc/1/fd
// is open, the supervisor keeps the protocol fds in flight on a socket of its own (SCM_RIGHTS;
// a socket cannot be reopened through /proc) whenever a process other than itself is alive,
// and therefore starts each call's process only once the request is read: no spare waits in
// advance, and the request's timeout also covers loading the module.
package forkd

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ReadyFD is the spare's file descriptor for the readiness pipe (EXECUTOR_READY_FD).
const ReadyFD = 3

// GateFD is a gated spare's file descriptor for its gate (EXECUTOR_GATE_FD): the spare reads
// one byte from it before any user initialiser runs (package forkd/entry), and the supervisor
// writes it once the cleanup is confirmed.
const GateFD = 4

// Exit statuses of the supervisor.
const (
	ExitOK       = 0  // the protocol stdin ended
	ExitNotInit  = 2  // not PID 1, or no command
	ExitUnclean  = 3  // cleanup could not be confirmed in time
	ExitInternal = 70 // the spare cannot be started, or another internal failure
)

// CleanupLimit bounds one cleanup; past it the supervisor exits with ExitUnclean.
const CleanupLimit = 5 * time.Second

// HoldLimit bounds how long a request waits for its spare to finish loading before the
// request's timeout starts anyway (the ready line says so: "hold"). The ready line goes out
// before the next spare is started, so that its start overlaps the host's turn-round; a
// request that comes first waits for the spare, and that wait is not the task's time. 10 s is
// the bound the host set on a ready line when it still waited for the load (a Node module
// whose import takes seconds is not charged for it, as before).
const HoldLimit = 10 * time.Second

// hardened are the signals a task could send to PID 1 that would otherwise end or stop it
// (Go's runtime dies on a user-sent SIGHUP, SIGINT, SIGTERM, SIGQUIT, SIGABRT, SIGSEGV, ...;
// SIGTSTP and friends stop an init sent them from outside). They are caught and dropped
// rather than set to SIG_IGN: a handled signal reverts to the default disposition across
// execve, an ignored one would be inherited by every spare.
var hardened = []os.Signal{
	syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGILL, syscall.SIGTRAP,
	syscall.SIGABRT, syscall.SIGBUS, syscall.SIGFPE, syscall.SIGUSR1, syscall.SIGSEGV,
	syscall.SIGUSR2, syscall.SIGPIPE, syscall.SIGALRM, syscall.SIGTERM, syscall.SIGSTKFLT,
	syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGXCPU, syscall.SIGXFSZ,
	syscall.SIGVTALRM, syscall.SIGIO, syscall.SIGPWR, syscall.SIGSYS, syscall.SIGCONT,
}

// Config says what to supervise.
type Config struct {
	// Path is the spare's executable; Argv its arguments (Argv[0] included).
	Path string
	Argv []string
	// Runner names the runner in ready lines ("go", "node").
	Runner string
	// Requests is the protocol input, Protocol the protocol output (both close-on-exec, so no
	// spare ever holds them).
	Requests *os.File
	Protocol *os.File
	// Gated says that the command waits at its gate (GateFD) before loading user code: then
	// the next spare may start while the last task's process is still being torn down.
	Gated bool
}

// Run supervises until the protocol input ends, then exits the process. It never returns.
func Run(cfg Config) {
	os.Exit(run(cfg))
}

// IsForkMode reports whether the environment or the arguments ask for fork mode.
func IsForkMode(args []string) bool {
	if os.Getenv("EXECUTOR_SERVE") == "fork" {
		return true
	}
	for _, arg := range args {
		if arg == "--fork" {
			return true
		}
	}
	return false
}

type supervisor struct {
	cfg    Config
	in     *os.File // the protocol fds; nil while sealed
	out    *os.File
	sealed bool   // sealed mode (see the package doc)
	vault  [2]int // sealed mode: the socket pair holding the protocol fds in flight
	env    []string
	wipe   []string
	ipc    ipcCleaner
	spare  *spare // only the main goroutine replaces it

	mu      sync.Mutex     // held while a child is started and while reaping
	watched map[int]*child // children whose exit status is wanted
	reaped  chan struct{}  // a token whenever reap has collected a process
	room    *room          // gated spares: the cgroup counters an early start checks
}

// child is a process whose exit status the supervisor waits for.
type child struct {
	pid     int
	done    chan struct{}
	status  syscall.WaitStatus // valid once done is closed
	stopped bool               // it stopped (a one-shot runner does once it has answered)
	resumed bool               // it was continued after it stopped (guarded by mu)
}

type spare struct {
	*child
	stdin  *os.File      // the request pipe's write end
	stdout *os.File      // the response pipe's read end
	loaded chan struct{} // closed once it has loaded the user module, or has ended
	logs   *relay        // its stderr
	gate   *os.File      // a gated spare's gate (the write end), until it is opened
}

func run(cfg Config) int {
	if pid := os.Getpid(); pid != 1 {
		fmt.Fprintf(os.Stderr, "executor-forkd: fork mode runs only as PID 1 (the container's "+
			"init), not as pid %d: its cleanup kills every other process and wipes /tmp\n", pid)
		return ExitNotInit
	}
	if len(cfg.Argv) == 0 || cfg.Path == "" || cfg.Requests == nil || cfg.Protocol == nil {
		fmt.Fprintln(os.Stderr, "executor-forkd: no command to supervise")
		return ExitNotInit
	}
	// One P: the supervisor waits far more than it computes, and with a second P every hand-off
	// between its goroutines (reaper, pipe readers, relay) woke another thread (futex, an IPI).
	// The spares are not affected (GOMAXPROCS is not in their environment).
	runtime.GOMAXPROCS(1)
	// Not dumpable: /proc/1/{mem,fd,environ,...} become root's, closed to the tasks (same uid),
	// and PID 1 cannot be ptraced. (gVisor leaves /proc/1/fd open: see sealed mode.)
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_DUMPABLE, 0, 0); errno != 0 {
		fmt.Fprintln(os.Stderr, "executor-forkd: prctl(PR_SET_DUMPABLE):", errno)
		return ExitInternal
	}
	dropped := make(chan os.Signal, 16)
	signal.Notify(dropped, hardened...)
	go func() {
		for range dropped {
		}
	}()

	s := &supervisor{
		cfg:     cfg,
		in:      cfg.Requests,
		out:     cfg.Protocol,
		env:     spareEnv(os.Environ(), cfg.Gated),
		wipe:    wipePaths(),
		watched: map[int]*child{},
		reaped:  make(chan struct{}, 1),
	}
	children := make(chan os.Signal, 1)
	signal.Notify(children, syscall.SIGCHLD)
	go func() {
		for range children {
			s.reap()
		}
	}()
	s.reap()

	if !s.procFDsClosed() {
		if err := s.openVault(); err != nil {
			fmt.Fprintln(os.Stderr, "executor-forkd:", err)
			return ExitInternal
		}
		s.sealed = true
	} else if err := s.startSpare(); err != nil {
		fmt.Fprintln(os.Stderr, "executor-forkd:", err)
		return ExitInternal
	} else {
		if cfg.Gated {
			s.room = openRoom()
		}
		s.spare.open()
		s.awaitLoaded(0) // the first ready line: the module is loaded (the host bounds this)
	}
	if err := s.writeReady(); err != nil {
		return s.outputFailed(err)
	}
	in := bufio.NewReaderSize(protocolIn{s}, 1<<16)
	for {
		line, readErr := in.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			if code, stop := s.call(line); stop {
				return code
			}
		}
		if readErr != nil {
			killOthers()
			if errors.Is(readErr, io.EOF) {
				return ExitOK
			}
			fmt.Fprintln(os.Stderr, "executor-forkd: read requests:", readErr)
			return ExitInternal
		}
	}
}

// protocolIn reads the protocol input wherever it is now (sealed mode moves it).
type protocolIn struct{ s *supervisor }

func (p protocolIn) Read(b []byte) (int, error) { return p.s.in.Read(b) }

// call serves one request: answer, cleanup, next spare, ready line. stop is true when the
// supervisor must exit with code.
func (s *supervisor) call(line []byte) (code int, stop bool) {
	req := parseRequest(line)
	if s.sealed {
		if err := s.seal(); err != nil {
			fmt.Fprintln(os.Stderr, "executor-forkd:", err)
			return ExitInternal, true
		}
		if err := s.startSpare(); err != nil { // the request's timeout bounds the loading too
			fmt.Fprintln(os.Stderr, "executor-forkd:", err)
			return ExitInternal, true
		}
		s.spare.open()
	} else {
		s.awaitLoaded(HoldLimit)
	}
	answer := s.answer(req) // every other process has SIGKILL pending from here on
	deadline := time.Now().Add(CleanupLimit)
	// Sealed, the protocol comes back only once every other process is confirmed dead.
	// Otherwise the answer goes out first and the reaping follows: a process with SIGKILL
	// pending never runs another instruction, and the stopped spare's teardown (its exit)
	// is off the call's path.
	if s.sealed {
		if err := s.killAll(deadline); err != nil {
			fmt.Fprintln(os.Stderr, "executor-forkd: cleanup not confirmed, exiting:", err)
			return ExitUnclean, true
		}
	}
	// The log marker comes after everything the task's processes wrote.
	s.spare.logs.wait(deadline)
	if s.sealed {
		if err := s.unseal(); err != nil {
			fmt.Fprintln(os.Stderr, "executor-forkd:", err)
			return ExitInternal, true
		}
	}
	if req.marker != "" {
		_, _ = os.Stderr.WriteString(req.marker + "\n")
		answer = withMarker(answer, req.marker)
	}
	if _, err := s.out.Write(append(answer, '\n')); err != nil {
		return s.outputFailed(err), true
	}
	// A gated spare may start now if the only process left is the last one, stopped and
	// killed: it can run no instruction and has no system call in progress (see quiet), and
	// the new spare runs no user code before its gate opens, after the cleanup. Its exec and
	// Go start then overlap that process's teardown and the wipe.
	next := (*spare)(nil)
	if !s.sealed && s.cfg.Gated && s.quiet(s.spare) && s.room.enough() && s.startSpare() == nil {
		next = s.spare
		if !s.awaitGone(next.pid, deadline) { // something else ran after all: the slow way
			next.discard()
			next = nil
		}
	}
	if !s.sealed && next == nil {
		if err := s.killAll(deadline); err != nil {
			fmt.Fprintln(os.Stderr, "executor-forkd: cleanup not confirmed, exiting:", err)
			return ExitUnclean, true
		}
	}
	if err := s.clean(time.Now().Add(CleanupLimit)); err != nil {
		fmt.Fprintln(os.Stderr, "executor-forkd: cleanup not confirmed, exiting:", err)
		return ExitUnclean, true
	}
	// Ready first, then the next spare: its start overlaps the host's turn-round, and the
	// next request waits for it (awaitLoaded) outside its timeout.
	if err := s.writeReady(); err != nil {
		return s.outputFailed(err), true
	}
	if !s.sealed {
		if next == nil {
			if err := s.startSpare(); err != nil {
				fmt.Fprintln(os.Stderr, "executor-forkd:", err)
				return ExitInternal, true
			}
		}
		s.spare.open()
	}
	return 0, false
}

// quiet reports whether no process is left but the supervisor and the task's process sp, and
// sp is dead or stopped (the runner stops once it has answered) and was not continued since.
// A stopped process has no system call in progress (a group stop completes only once every
// thread has stopped, which is when its parent hears of it), and with SIGKILL pending it never
// runs again: nothing it does can reach a process started from now on. A task process that
// was still running (timed out), or that left any other process, takes the slow way.
func (s *supervisor) quiet(sp *spare) bool {
	select {
	case <-sp.done:
	default:
		return false
	}
	// First the look at /proc: any process that could have continued sp existed before it,
	// and a SIGCONT marks sp as continued when it is sent, so the reap after it tells.
	others, err := otherProcesses()
	if err != nil || len(others) > 1 || len(others) == 1 && others[0] != sp.pid {
		return false
	}
	s.reap()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.watched[sp.pid] != sp.child {
		return true // reaped: dead
	}
	return sp.stopped && !sp.resumed
}

// Room a gated spare needs while the last task's process, tearing down, still counts against
// the container's limits: tasks (its Go runtime's threads) and memory.
const (
	spareTasks  = 32
	spareMemory = 32 << 20
)

// cgroupFiles are the usage and limit files of the pids and memory controllers: cgroup v1,
// then v2.
var cgroupFiles = [2][2][2]string{
	{
		{"/sys/fs/cgroup/pids/pids.current", "/sys/fs/cgroup/pids/pids.max"},
		{"/sys/fs/cgroup/pids.current", "/sys/fs/cgroup/pids.max"},
	},
	{
		{"/sys/fs/cgroup/memory/memory.usage_in_bytes", "/sys/fs/cgroup/memory/memory.limit_in_bytes"},
		{"/sys/fs/cgroup/memory.current", "/sys/fs/cgroup/memory.max"},
	},
}

// room holds the usage and limit files of the pids and memory cgroups, open (read again at
// offset 0 per call: no path lookups on the call's path).
type room struct {
	files [2][2]*os.File // [pids, memory][usage, limit]
}

// openRoom opens the files roomFor reads; nil when either controller's are missing.
func openRoom() *room {
	r := &room{}
	for controller, versions := range cgroupFiles {
		for _, paths := range versions {
			usage, err := os.Open(paths[0])
			if err != nil {
				continue
			}
			limit, err := os.Open(paths[1])
			if err != nil {
				usage.Close()
				continue
			}
			r.files[controller] = [2]*os.File{usage, limit}
			break
		}
		if r.files[controller][0] == nil {
			r.close()
			return nil
		}
	}
	return r
}

func (r *room) close() {
	for _, pair := range r.files {
		for _, f := range pair {
			if f != nil {
				f.Close()
			}
		}
	}
}

// enough reports whether the container's pids and memory cgroups leave a spare room to start
// before the last task's process is gone: a task that used (nearly) all of either must not
// make the next call's process fail to start. Unknown (nil, unreadable) counts as no room.
func (r *room) enough() bool {
	if r == nil {
		return false
	}
	for controller, need := range [2]uint64{spareTasks, spareMemory} {
		usage, okUsage := readCount(r.files[controller][0])
		limit, okLimit := readCount(r.files[controller][1])
		if !okUsage || !okLimit || usage > limit || limit-usage < need {
			return false
		}
	}
	return true
}

// readCount reads a cgroup counter or limit from the start of f ("max": no limit).
func readCount(f *os.File) (uint64, bool) {
	var buf [32]byte
	n, err := f.ReadAt(buf[:], 0)
	if n == 0 || err != nil && !errors.Is(err, io.EOF) {
		return 0, false
	}
	text := strings.TrimSpace(string(buf[:n]))
	if text == "max" {
		return math.MaxUint64, true
	}
	count, err := strconv.ParseUint(text, 10, 64)
	return count, err == nil
}

// awaitGone waits until /proc lists no process but the supervisor and the new spare keep
// (after quiet: the last task's process, killed, tearing down). False, after killing every
// process (the new spare too), when any other process shows up.
func (s *supervisor) awaitGone(keep int, deadline time.Time) bool {
	var pause reapPause
	defer pause.stop()
	for {
		s.reap()
		others, err := otherProcesses()
		if err != nil || time.Now().After(deadline) {
			killOthers()
			return false
		}
		gone := true
		for _, pid := range others {
			if pid != keep {
				gone = false
			}
		}
		if gone {
			return true
		}
		pause.wait(s.reaped)
	}
}

func (s *supervisor) outputFailed(err error) int {
	killOthers()
	if errors.Is(err, syscall.EPIPE) {
		return ExitOK // the host went away
	}
	fmt.Fprintln(os.Stderr, "executor-forkd: write response:", err)
	return ExitInternal
}

func (s *supervisor) writeReady() error {
	hold := HoldLimit.Seconds()
	if s.sealed {
		hold = 0 // the spare starts once the request is read, and its timeout covers that
	}
	line := fmt.Sprintf(`{"ready":true,"runner":%s,"pid":%d,"sealed":%t,"hold":%g}`+"\n",
		quote(s.cfg.Runner), os.Getpid(), s.sealed, hold)
	_, err := s.out.WriteString(line)
	return err
}

// --- one call ---------------------------------------------------------------------------------

type request struct {
	forward  []byte // what the task's process gets
	marker   string
	timeout  time.Duration // 0: none
	seconds  float64       // the timeout as given
	hasLimit bool
	limit    int64
}

// parseRequest reads the fields the parent enforces. A line that is not a JSON object is
// forwarded as it is: the task's runner answers BAD_REQUEST.
func parseRequest(line []byte) request {
	req := request{forward: line}
	var fields map[string]json.RawMessage
	if json.Unmarshal(line, &fields) != nil || fields == nil {
		return req
	}
	var seconds float64
	if raw, ok := fields["timeout"]; ok && json.Unmarshal(raw, &seconds) == nil && !bytes.Equal(raw, []byte("null")) {
		req.seconds = seconds
		switch {
		case seconds <= 0:
			req.timeout = time.Nanosecond
		case seconds > 1e9:
			req.timeout = 0 // longer than anyone waits: none
		default:
			req.timeout = time.Duration(seconds * float64(time.Second))
		}
	}
	var limit float64
	if raw, ok := fields["max_output_bytes"]; ok && json.Unmarshal(raw, &limit) == nil && !bytes.Equal(raw, []byte("null")) {
		req.hasLimit = true
		req.limit = int64(math.Max(0, math.Min(limit, 1<<62)))
	}
	var marker string
	if raw, ok := fields["log_marker"]; ok && json.Unmarshal(raw, &marker) == nil && marker != "" {
		req.marker = marker
		// The parent writes and echoes the marker itself, after everything the task and its
		// leftovers wrote; a runner doing it too would put a second marker in the logs.
		delete(fields, "log_marker")
		var forward bytes.Buffer
		encoder := json.NewEncoder(&forward) // one line, strings as they came (no HTML escapes)
		encoder.SetEscapeHTML(false)
		if encoder.Encode(fields) == nil {
			req.forward = forward.Bytes()
		}
	}
	if len(req.forward) == 0 || req.forward[len(req.forward)-1] != '\n' {
		req.forward = append(req.forward[:len(req.forward):len(req.forward)], '\n')
	}
	return req
}

// answer hands the request to the spare and turns what happens into one response line.
func (s *supervisor) answer(req request) []byte {
	sp := s.spare
	before, counted := oomKills()
	sp.logs.release()

	go func() {
		_, _ = sp.stdin.Write(req.forward) // EPIPE when the spare is gone: its exit answers
		_ = sp.stdin.Close()
	}()

	var buf []byte
	overflow := make(chan struct{})
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		chunk := make([]byte, 64<<10)
		for {
			n, err := sp.stdout.Read(chunk)
			buf = append(buf, chunk[:n]...)
			if req.hasLimit && int64(len(buf)) > req.limit {
				close(overflow)
				return
			}
			if err != nil {
				return
			}
		}
	}()

	var deadline <-chan time.Time
	if req.timeout > 0 {
		timer := time.NewTimer(req.timeout)
		defer timer.Stop()
		deadline = timer.C
	}
	// A missed SIGCHLD must not turn into a timeout: poll as well, slowly.
	poll := time.NewTicker(250 * time.Millisecond)
	defer poll.Stop()
	timedOut := false
wait:
	for {
		select {
		case <-sp.done:
			break wait
		case <-overflow:
			break wait
		case <-deadline:
			timedOut = true
			break wait
		case <-poll.C:
			s.reap()
		}
	}
	// Everything but the parent dies now: nothing written later (by the task's leftovers)
	// reaches the answer, or the logs before the marker. The response pipe then ends.
	killOthers()
	select {
	case <-readDone:
	case <-time.After(CleanupLimit):
		_ = sp.stdout.SetReadDeadline(time.Now())
		<-readDone
	}
	_ = sp.stdout.Close()

	switch {
	case timedOut:
		return runnerError("TIMEOUT", fmt.Sprintf(
			"the task did not finish within its timeout of %s s; its processes were killed",
			strconv.FormatFloat(req.seconds, 'g', -1, 64)), nil)
	case req.hasLimit && int64(len(buf)) > req.limit:
		return runnerError("OUTPUT_TOO_LARGE", fmt.Sprintf(
			"the task's process wrote more than max_output_bytes=%d bytes; it was killed",
			req.limit), nil)
	}
	if !s.await(sp.child) {
		return runnerError("EXIT_NONZERO", "the task's process could not be reaped", nil)
	}
	status := sp.status
	// Stopped: answered (or user code stopped it first, and the pipe holds no response).
	if sp.stopped || status.Exited() && status.ExitStatus() == 0 {
		if response, problem := oneResponse(buf); problem == "" {
			return response
		} else {
			return runnerError("PROTOCOL_ERROR",
				"the task's process wrote "+problem+" instead of one response", nil)
		}
	}
	code := exitCode(status)
	if after, ok := oomKills(); counted && ok && after > before {
		return runnerError("OOM_KILLED",
			"the task's process was killed by the out-of-memory killer: the container's "+
				"memory limit was reached", &code)
	}
	if status.Signaled() {
		message := fmt.Sprintf("the task's process was killed by signal %d (%s) without answering",
			int(status.Signal()), status.Signal())
		if status.Signal() == syscall.SIGKILL && !counted {
			message += "; the out-of-memory killer may have killed it (the memory cgroup's " +
				"oom_kill counter cannot be read here)"
		}
		return runnerError("EXIT_NONZERO", message, &code)
	}
	return runnerError("EXIT_NONZERO",
		fmt.Sprintf("the task's process exited with status %d without answering", code), &code)
}

func exitCode(status syscall.WaitStatus) int {
	if status.Signaled() {
		return 128 + int(status.Signal())
	}
	return status.ExitStatus()
}

// oneResponse checks that data is exactly one newline-terminated JSON object with a boolean
// "ok", and returns it without the newline; else it describes what data is.
func oneResponse(data []byte) ([]byte, string) {
	if len(bytes.TrimSpace(data)) == 0 {
		if len(data) == 0 {
			return nil, "nothing"
		}
		return nil, fmt.Sprintf("%d bytes of white space", len(data))
	}
	if data[len(data)-1] != '\n' {
		return nil, fmt.Sprintf("%d bytes without a final newline", len(data))
	}
	body := bytes.TrimSpace(data[:len(data)-1])
	if i := bytes.IndexByte(body, '\n'); i >= 0 {
		return nil, fmt.Sprintf("%d lines", bytes.Count(bytes.TrimSpace(data), []byte("\n"))+1)
	}
	var shape struct {
		OK *bool `json:"ok"`
	}
	if len(body) == 0 || body[0] != '{' || json.Unmarshal(body, &shape) != nil || shape.OK == nil {
		return nil, fmt.Sprintf("%d bytes that are not a JSON response", len(body))
	}
	return body, ""
}

// withMarker echoes the log marker in a one-line JSON object response.
func withMarker(response []byte, marker string) []byte {
	out := make([]byte, 0, len(response)+len(marker)+16)
	out = append(out, response[:len(response)-1]...)
	out = append(out, `,"log_marker":`...)
	out = append(out, quote(marker)...)
	return append(out, '}')
}

func runnerError(code, message string, exitCode *int) []byte {
	type info struct {
		Message  string `json:"message"`
		Code     string `json:"code"`
		ExitCode *int   `json:"exit_code,omitempty"`
	}
	encoded, err := json.Marshal(struct {
		OK    bool `json:"ok"`
		Error info `json:"error"`
	}{false, info{message, code, exitCode}})
	if err != nil { // cannot happen for these types
		return []byte(`{"ok":false,"error":{"message":"internal encoding failure","code":"` + code + `"}}`)
	}
	return encoded
}

func quote(text string) string {
	encoded, err := json.Marshal(text)
	if err != nil {
		return `""`
	}
	return string(encoded)
}

// --- spares -----------------------------------------------------------------------------------

// spareEnv is the supervisor's environment for the spares: without EXECUTOR_SERVE (a spare is
// a one-shot runner), with EXECUTOR_READY_FD, and EXECUTOR_GATE_FD when gated.
func spareEnv(environ []string, gated bool) []string {
	env := make([]string, 0, len(environ)+2)
	for _, kv := range environ {
		if strings.HasPrefix(kv, "EXECUTOR_SERVE=") || strings.HasPrefix(kv, "EXECUTOR_READY_FD=") ||
			strings.HasPrefix(kv, "EXECUTOR_GATE_FD=") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "EXECUTOR_READY_FD="+strconv.Itoa(ReadyFD))
	if gated {
		env = append(env, "EXECUTOR_GATE_FD="+strconv.Itoa(GateFD))
	}
	return env
}

// startSpare starts the next spare; its loaded channel closes once the spare has loaded the
// user module (its readiness byte) or has ended (its request then answers with how it ended).
func (s *supervisor) startSpare() error {
	reqR, reqW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("request pipe: %w", err)
	}
	respR, respW, err := os.Pipe()
	if err != nil {
		reqR.Close()
		reqW.Close()
		return fmt.Errorf("response pipe: %w", err)
	}
	readyR, readyW, err := os.Pipe()
	if err != nil {
		reqR.Close()
		reqW.Close()
		respR.Close()
		respW.Close()
		return fmt.Errorf("readiness pipe: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		reqR.Close()
		reqW.Close()
		respR.Close()
		respW.Close()
		readyR.Close()
		readyW.Close()
		return fmt.Errorf("stderr pipe: %w", err)
	}
	files := []*os.File{reqR, respW, errW, readyW}
	var gateR, gateW *os.File
	if s.cfg.Gated {
		if gateR, gateW, err = os.Pipe(); err != nil {
			for _, f := range []*os.File{reqR, reqW, respR, respW, readyR, readyW, errR, errW} {
				f.Close()
			}
			return fmt.Errorf("gate pipe: %w", err)
		}
		files = append(files, gateR)
	}
	attr := &os.ProcAttr{
		Env:   s.env,
		Files: files,
		Sys: &syscall.SysProcAttr{
			Setsid:    true,
			Pdeathsig: syscall.SIGKILL,
		},
	}
	started, err := s.start(s.cfg.Path, s.cfg.Argv, attr)
	reqR.Close()
	respW.Close()
	readyW.Close()
	errW.Close()
	if gateR != nil {
		gateR.Close()
	}
	if err != nil {
		reqW.Close()
		respR.Close()
		readyR.Close()
		errR.Close()
		if gateW != nil {
			gateW.Close()
		}
		return err
	}
	logs := newRelay(errR, os.Stderr)
	sp := &spare{child: started, stdin: reqW, stdout: respR, loaded: make(chan struct{}), logs: logs, gate: gateW}
	s.spare = sp
	go func() {
		defer close(sp.loaded)
		defer readyR.Close()
		var one [1]byte
		_, _ = readyR.Read(one[:]) // the byte, or the end once every holder is dead
	}()
	// The OOM killer's first choice, never the parent. One-shot runners also raise it
	// themselves before loading user code (the race-free half); this covers any command.
	_ = os.WriteFile(fmt.Sprintf("/proc/%d/oom_score_adj", sp.pid), []byte("1000"), 0)
	return nil
}

// discard closes the supervisor's ends of a spare's pipes (the spare is killed).
func (sp *spare) discard() {
	for _, f := range []*os.File{sp.stdin, sp.stdout, sp.gate} {
		if f != nil {
			_ = f.Close()
		}
	}
	sp.gate = nil
}

// open lets a gated spare load the user module (nothing for one without a gate).
func (sp *spare) open() {
	if sp.gate == nil {
		return
	}
	_, _ = sp.gate.Write([]byte{'\n'}) // EPIPE when it is gone: its request answers how
	_ = sp.gate.Close()
	sp.gate = nil
}

// awaitLoaded waits until the spare has loaded or has ended, at most limit (0: no limit).
func (s *supervisor) awaitLoaded(limit time.Duration) {
	sp := s.spare
	var expired <-chan time.Time
	if limit > 0 {
		timer := time.NewTimer(limit)
		defer timer.Stop()
		expired = timer.C
	}
	select {
	case <-sp.loaded:
	case <-sp.done:
	case <-expired:
	}
}

// start starts a child whose exit status is wanted.
func (s *supervisor) start(path string, argv []string, attr *os.ProcAttr) (*child, error) {
	s.mu.Lock() // the reaper must not collect the child before its pid is known
	defer s.mu.Unlock()
	process, err := os.StartProcess(path, argv, attr)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", path, err)
	}
	c := &child{pid: process.Pid, done: make(chan struct{})}
	s.watched[c.pid] = c
	return c, nil
}

// reap collects every child that has ended, noting the statuses that are wanted.
func (s *supervisor) reap() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		var status syscall.WaitStatus
		// WUNTRACED: a one-shot runner stops itself once it has answered (runner.Main), so
		// the call's answer need not wait for its exit.
		// WCONTINUED: a stopped task process that something continued is not quiet.
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG|syscall.WUNTRACED|syscall.WCONTINUED, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
		ended := status.Exited() || status.Signaled()
		if ended {
			select {
			case s.reaped <- struct{}{}:
			default:
			}
		}
		c := s.watched[pid]
		if c == nil {
			continue
		}
		if ended {
			delete(s.watched, pid)
		}
		switch {
		case status.Continued():
			c.resumed = c.stopped
		case c.stopped: // its status was taken when it stopped
		default:
			c.status = status
			c.stopped = status.Stopped()
			close(c.done)
		}
	}
}

// await waits (bounded) until a child, already sent SIGKILL, has been reaped.
func (s *supervisor) await(c *child) bool {
	deadline := time.NewTimer(CleanupLimit)
	defer deadline.Stop()
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	for {
		select {
		case <-c.done:
			return true
		case <-poll.C:
			s.reap()
		case <-deadline.C:
			return false
		}
	}
}

// killOthers sends SIGKILL to every process but PID 1 (the caller; init is exempt anyway).
func killOthers() {
	_ = syscall.Kill(-1, syscall.SIGKILL)
}

// --- cleanup ----------------------------------------------------------------------------------

// killAll kills every process but the parent and reaps them, until /proc lists no other.
// Between two looks it waits for the next process reaped (SIGCHLD), at most a millisecond:
// a killed task's teardown usually ends well within that.
func (s *supervisor) killAll(deadline time.Time) error {
	var pause reapPause
	defer pause.stop()
	for {
		killOthers()
		s.reap()
		others, err := otherProcesses()
		if err != nil {
			return err
		}
		if len(others) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes left: %v", others)
		}
		pause.wait(s.reaped)
	}
}

// reapPause is one loop's wait for the next process reaped or a millisecond, whichever comes
// first, with one timer kept across the loop's turns.
type reapPause struct{ timer *time.Timer }

func (p *reapPause) wait(reaped <-chan struct{}) {
	if p.timer == nil {
		p.timer = time.NewTimer(time.Millisecond)
	} else {
		p.timer.Reset(time.Millisecond)
	}
	select {
	case <-reaped:
		if !p.timer.Stop() {
			<-p.timer.C
		}
	case <-p.timer.C:
	}
}

func (p *reapPause) stop() {
	if p.timer != nil {
		p.timer.Stop()
	}
}

// clean returns the container's state to what it was before the first spare: the writable
// paths empty, no System V IPC object. Every other process is dead already.
func (s *supervisor) clean(deadline time.Time) error {
	for _, path := range s.wipe {
		if err := wipe(path, deadline); err != nil {
			return err
		}
	}
	if err := s.ipc.clean(deadline); err != nil {
		return err
	}
	if time.Now().After(deadline) {
		return fmt.Errorf("cleanup took longer than %s", CleanupLimit)
	}
	return nil
}

// otherProcesses lists the pids in /proc other than the caller's.
func otherProcesses() ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	self := os.Getpid()
	var pids []int
	for _, entry := range entries {
		pid, err := strconv.Atoi(entry.Name())
		if err == nil && pid != self {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// --- the OOM killer's counter -------------------------------------------------------------------

var oomFiles = []string{
	"/sys/fs/cgroup/memory/memory.oom_control", // cgroup v1
	"/sys/fs/cgroup/memory.events",             // cgroup v2
}

// oomFile is the first of oomFiles with a counter, kept open (read again at offset 0 per
// call); nil when none has one.
var oomFile = struct {
	once sync.Once
	f    *os.File
}{}

// oomKills reads the memory cgroup's oom_kill counter; ok is false when no file has one.
func oomKills() (count uint64, ok bool) {
	oomFile.once.Do(func() {
		for _, path := range oomFiles {
			if f, err := os.Open(path); err == nil {
				if _, ok := readOOMKills(f); ok {
					oomFile.f = f
					return
				}
				f.Close()
			}
		}
	})
	if oomFile.f == nil {
		return 0, false
	}
	return readOOMKills(oomFile.f)
}

func readOOMKills(f *os.File) (uint64, bool) {
	var buf [4096]byte
	n, err := f.ReadAt(buf[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, false
	}
	return parseOOMKills(buf[:n])
}

func parseOOMKills(data []byte) (uint64, bool) {
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 2 && fields[0] == "oom_kill" {
			n, err := strconv.ParseUint(fields[1], 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}
