// Package runner speaks the executor wire protocol for a Go function compiled into the binary.
//
// Protocol (see executor/protocol.py and tests/vectors/): read {"schema_in", "schema_out",
// "input"} from stdin, call the function, write {"ok": true, "output": ...} or
// {"ok": false, "error": {"message", "code", "details"}} to the original stdout and exit 0.
// With --serve (or EXECUTOR_SERVE=1) it answers newline-delimited requests, one line each,
// until EOF. A request's "collect": {"path", "max_bytes", "max_files"} empties that directory
// before the call and answers with the regular files the task left there, "files":
// {"rel/path": "<base64>"} (docs/RUNNERS.md, "Files back"). Fork mode (EXECUTOR_SERVE=fork or
// --fork) is package forkd, entered through package forkd/entry before any user initialiser
// runs. Standard library only.
package runner

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strconv"
	"syscall"

	"executor.local/runner/fdswap"
)

// Func is the user's function: it receives the raw JSON input and returns any value
// encoding/json can marshal.
type Func func(input json.RawMessage) (any, error)

type errorInfo struct {
	Message string `json:"message"`
	Code    string `json:"code"`
	Details string `json:"details,omitempty"`
}

type okResponse struct {
	OK     bool   `json:"ok"`
	Output any    `json:"output"`
	Usage  *usage `json:"usage,omitempty"`
}

// okFilesResponse is okResponse with the collected files (encoding/json writes []byte as
// base64), "files" present even when empty.
type okFilesResponse struct {
	OK     bool              `json:"ok"`
	Output any               `json:"output"`
	Files  map[string][]byte `json:"files"`
	Usage  *usage            `json:"usage,omitempty"`
}

type errorResponse struct {
	OK    bool      `json:"ok"`
	Error errorInfo `json:"error"`
}

type request struct {
	SchemaIn  json.RawMessage `json:"schema_in"`
	SchemaOut json.RawMessage `json:"schema_out"`
	Input     json.RawMessage `json:"input"`
	LogMarker string          `json:"log_marker"`
	Collect   json.RawMessage `json:"collect"`
}

// Main runs the protocol around fn and exits the process.
func Main(fn Func) {
	out, err := fdswap.Protocol, fdswap.Err
	if err != nil {
		fmt.Fprintln(os.Stderr, "executor runner:", err)
		os.Exit(70)
	}
	serve := os.Getenv("EXECUTOR_SERVE") == "1"
	for _, arg := range os.Args[1:] {
		switch arg {
		case "--serve":
			serve = true
		case "--fork":
			failFork()
		}
	}
	if os.Getenv("EXECUTOR_SERVE") == "fork" {
		failFork()
	}
	spare := os.Getenv("EXECUTOR_READY_FD") != ""
	signalReady()
	if serve {
		err = Serve(fn, fdswap.Requests, out)
	} else {
		err = RunOnce(fn, fdswap.Requests, out)
	}
	if err != nil && !errors.Is(err, syscall.EPIPE) {
		fmt.Fprintln(os.Stderr, "executor runner:", err)
		os.Exit(70)
	}
	if spare && !serve && err == nil {
		stopAnswered(out)
	}
	os.Exit(0)
}

// stopAnswered ends a fork-mode spare once its answer is written: it closes its response pipe
// and its stderr (fds 1 and 2), so the supervisor reads both to their end at once, then stops
// itself, so the supervisor answers without waiting for this process's exit (it then sends
// SIGKILL, which ends a stopped process). Output that goroutines still write is cut off here,
// as the answer ends the call.
func stopAnswered(out *os.File) {
	_ = out.Close()
	_ = syscall.Close(1)
	_ = syscall.Close(2)
	_ = syscall.Kill(os.Getpid(), syscall.SIGSTOP)
}

// failFork ends a binary asked for fork mode that was built without package forkd/entry:
// its user initialisers have already run, so it cannot be the supervisor.
func failFork() {
	fmt.Fprintln(os.Stderr, "executor runner: fork mode needs the command to import "+
		"executor.local/runner/forkd/entry first (see cmd/runner)")
	os.Exit(2)
}

// signalReady tells a fork-mode supervisor that this spare has loaded the user's function:
// with EXECUTOR_READY_FD set, one byte on that fd, which is then closed.
func signalReady() {
	value, set := os.LookupEnv("EXECUTOR_READY_FD")
	if !set {
		return
	}
	_ = os.Unsetenv("EXECUTOR_READY_FD")
	fd, err := strconv.Atoi(value)
	if err != nil || fd < 3 {
		return
	}
	ready := os.NewFile(uintptr(fd), "ready")
	_, _ = ready.Write([]byte{'\n'})
	_ = ready.Close()
}

// RunOnce reads one request (any JSON layout) until EOF and writes one response.
func RunOnce(fn Func, in io.Reader, out io.Writer) error {
	raw, err := io.ReadAll(in)
	if err != nil {
		return fmt.Errorf("read stdin: %w", err)
	}
	// Newline-terminated like serve mode: the host stops reading at the newline instead
	// of waiting for the container to exit.
	_, err = out.Write(append(Handle(fn, raw), '\n'))
	return err
}

// Serve answers newline-delimited requests, one response line each, until EOF.
func Serve(fn Func, in io.Reader, out io.Writer) error {
	serving = true
	reader := bufio.NewReaderSize(in, 1<<16)
	for {
		line, err := reader.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			if _, werr := out.Write(append(Handle(fn, line), '\n')); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read stdin: %w", err)
		}
	}
}

// Handle turns one raw request into one compact JSON response (no trailing newline).
//
// When the request carries a "log_marker", the marker is written to stderr as a line once the
// function has finished, before the response, and echoed in the response: the host then
// knows every log line written before it has arrived, without waiting for the process to exit.
func Handle(fn Func, raw []byte) []byte {
	resp, marker := handle(fn, raw)
	if marker == "" {
		return resp
	}
	_, _ = os.Stderr.WriteString(marker + "\n")
	quoted, err := json.Marshal(marker)
	if err != nil {
		return resp
	}
	out := make([]byte, 0, len(resp)+len(quoted)+16)
	out = append(out, resp[:len(resp)-1]...)
	out = append(out, `,"log_marker":`...)
	out = append(out, quoted...)
	return append(out, '}')
}

func handle(fn Func, raw []byte) ([]byte, string) {
	var req request
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return failure("BAD_REQUEST", "the request must be a JSON object", ""), ""
	}
	if err := json.Unmarshal(trimmed, &req); err != nil {
		return failure("BAD_REQUEST", "the request is not valid JSON: "+err.Error(), ""), ""
	}
	marker := req.LogMarker
	input := req.Input
	if len(input) == 0 {
		input = json.RawMessage("null")
	}
	spec, problem := parseCollect(req.Collect)
	if problem != nil {
		return failure(problem.code, problem.message, ""), marker
	}
	if spec != nil {
		if problem := emptyDir(spec.Path); problem != nil {
			return failure(problem.code, problem.message, ""), marker
		}
	}
	before := usageNow()
	output, err := call(fn, input)
	if err != nil {
		var f *userFailure
		if errors.As(err, &f) {
			return failure("USER_ERROR", f.message, f.stack), marker
		}
		return failure("USER_ERROR", err.Error(), fmt.Sprintf("%+v", err)), marker
	}
	var response any
	if spec != nil {
		files, problem := collect(spec)
		if problem != nil {
			return failure(problem.code, problem.message, ""), marker
		}
		response = okFilesResponse{OK: true, Output: output, Files: files, Usage: usageSince(before)}
	} else {
		response = okResponse{OK: true, Output: output, Usage: usageSince(before)}
	}
	encoded, err := marshal(response)
	if err != nil {
		return failure("OUTPUT_NOT_SERIALIZABLE", "the output cannot be encoded as JSON: "+err.Error(), ""), marker
	}
	return encoded, marker
}

type userFailure struct {
	message string
	stack   string
}

func (f *userFailure) Error() string { return f.message }

// call runs fn, turning a panic into an error that carries the stack trace.
func call(fn Func, input json.RawMessage) (output any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &userFailure{message: fmt.Sprintf("panic: %v", r), stack: string(debug.Stack())}
		}
	}()
	output, err = fn(input)
	if err != nil {
		err = &userFailure{message: err.Error(), stack: fmt.Sprintf("%+v\n\n%s", err, debug.Stack())}
	}
	return output, err
}

func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

func failure(code, message, details string) []byte {
	encoded, err := marshal(errorResponse{Error: errorInfo{Message: message, Code: code, Details: details}})
	if err != nil { // cannot happen for strings; keep the protocol intact regardless
		return []byte(`{"ok":false,"error":{"message":"internal encoding failure","code":"` + code + `"}}`)
	}
	return encoded
}
