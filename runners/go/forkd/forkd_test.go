package forkd

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestParseRequest(t *testing.T) {
	req := parseRequest([]byte(`{"input":{"a":1},"timeout":1.5,"max_output_bytes":100,"log_marker":"m-1"}` + "\n"))
	if req.timeout != 1500*time.Millisecond || !req.hasLimit || req.limit != 100 || req.marker != "m-1" {
		t.Fatalf("fields: %+v", req)
	}
	var forwarded map[string]json.RawMessage
	if err := json.Unmarshal(req.forward, &forwarded); err != nil {
		t.Fatal(err)
	}
	if _, ok := forwarded["log_marker"]; ok || string(forwarded["input"]) != `{"a":1}` {
		t.Fatalf("forwarded %s", req.forward)
	}
	if !strings.HasSuffix(string(req.forward), "}\n") {
		t.Fatalf("forwarded %q", req.forward)
	}

	req = parseRequest([]byte(`{"input":"<a&b>","big":123456789012345678901234567890,"log_marker":"m"}`))
	if string(req.forward) != `{"big":123456789012345678901234567890,"input":"<a&b>"}`+"\n" {
		t.Fatalf("forwarded %q", req.forward)
	}

	for _, line := range []string{`{"input":1}`, `{"input":1,"timeout":null,"max_output_bytes":null}`} {
		req = parseRequest([]byte(line))
		if req.timeout != 0 || req.hasLimit || req.marker != "" || string(req.forward) != line+"\n" {
			t.Fatalf("%s: %+v", line, req)
		}
	}
	req = parseRequest([]byte(`{"timeout":0}`))
	if req.timeout <= 0 {
		t.Fatalf("timeout 0 must expire at once: %+v", req)
	}
	for _, line := range []string{"not json\n", "[1,2]\n", `{"timeout":"soon"}` + "\n"} {
		req = parseRequest([]byte(line))
		if req.timeout != 0 || string(req.forward) != line {
			t.Fatalf("%q: %+v", line, req)
		}
	}
}

func TestOneResponse(t *testing.T) {
	good, problem := oneResponse([]byte(`{"ok":true,"output":1}` + "\n"))
	if problem != "" || string(good) != `{"ok":true,"output":1}` {
		t.Fatalf("%q %q", good, problem)
	}
	for data, want := range map[string]string{
		"":                                "nothing",
		"\n":                              "1 bytes of white space",
		`{"ok":true}`:                     "without a final newline",
		"{\"ok\":true}\n{\"ok\":true}\n":  "2 lines",
		"garbage\n":                       "not a JSON response",
		"{\"output\":1}\n":                "not a JSON response",
		"[1]\n":                           "not a JSON response",
		"{\"ok\":true,\"output\":\n1}\n":  "2 lines",
		"{\"ok\":\"yes\",\"output\":1}\n": "not a JSON response",
	} {
		if _, problem := oneResponse([]byte(data)); !strings.Contains(problem, want) {
			t.Errorf("%q: %q, want %q", data, problem, want)
		}
	}
}

func TestAnswersAreProtocolResponses(t *testing.T) {
	code := 137
	line := withMarker(runnerError("OOM_KILLED", "killed", &code), `m"1`)
	var decoded struct {
		OK    bool `json:"ok"`
		Error struct {
			Message  string `json:"message"`
			Code     string `json:"code"`
			ExitCode *int   `json:"exit_code"`
		} `json:"error"`
		LogMarker string `json:"log_marker"`
	}
	if err := json.Unmarshal(line, &decoded); err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	if decoded.OK || decoded.Error.Code != "OOM_KILLED" || decoded.Error.ExitCode == nil ||
		*decoded.Error.ExitCode != 137 || decoded.LogMarker != `m"1` {
		t.Fatalf("%s", line)
	}
	if line := runnerError("TIMEOUT", "late", nil); strings.Contains(string(line), "exit_code") {
		t.Fatalf("%s", line)
	}
}

func TestParseOOMKills(t *testing.T) {
	v1 := "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"
	v2 := "low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\noom_group_kill 0\n"
	if n, ok := parseOOMKills([]byte(v1)); !ok || n != 3 {
		t.Fatalf("v1: %d %v", n, ok)
	}
	if n, ok := parseOOMKills([]byte(v2)); !ok || n != 2 {
		t.Fatalf("v2: %d %v", n, ok)
	}
	if _, ok := parseOOMKills([]byte("oom_kill_disable 0\n")); ok {
		t.Fatal("no counter must not read as 0")
	}
}

func TestListedIDs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shm")
	data := "       key      shmid perms       size\n" +
		"         0          5   600       4096\n" +
		"1163412803      32774   600       4096\n"
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	ids, err := listedIDs(path)
	if err != nil || !reflect.DeepEqual(ids, []int{5, 32774}) {
		t.Fatalf("%v %v", ids, err)
	}
	if ids, err := listedIDs(filepath.Join(t.TempDir(), "missing")); err != nil || ids != nil {
		t.Fatalf("%v %v", ids, err)
	}
}

func TestWipe(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "tmp")
	outside := filepath.Join(root, "outside")
	mustMkdir(t, filepath.Join(dir, "a", "b", "c"))
	mustMkdir(t, outside)
	mustWrite(t, filepath.Join(dir, "a", "b", "c", "file"))
	mustWrite(t, filepath.Join(dir, ".hidden"))
	mustWrite(t, filepath.Join(outside, "keep"))
	locked := filepath.Join(dir, "locked")
	mustMkdir(t, filepath.Join(locked, "inner"))
	mustWrite(t, filepath.Join(locked, "inner", "file"))
	if err := os.Chmod(filepath.Join(locked, "inner"), 0o500); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(locked, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}

	if err := wipe(dir, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if names, err := readNames(dir); err != nil || len(names) != 0 {
		t.Fatalf("left: %v %v", names, err)
	}
	if _, err := os.Stat(filepath.Join(outside, "keep")); err != nil {
		t.Fatalf("a symbolic link was followed: %v", err)
	}
	if err := wipe(filepath.Join(root, "missing"), time.Now().Add(time.Minute)); err != nil {
		t.Fatalf("a missing path is clean: %v", err)
	}
}

func TestSpareEnvAndWipePaths(t *testing.T) {
	given := []string{"PATH=/bin", "EXECUTOR_SERVE=fork", "EXECUTOR_READY_FD=9", "EXECUTOR_SERVEX=1", "EXECUTOR_GATE_FD=7"}
	env := spareEnv(given, false)
	want := []string{"PATH=/bin", "EXECUTOR_SERVEX=1", "EXECUTOR_READY_FD=3"}
	if !reflect.DeepEqual(env, want) {
		t.Fatalf("%v", env)
	}
	if env := spareEnv(given, true); !reflect.DeepEqual(env, append(want, "EXECUTOR_GATE_FD=4")) {
		t.Fatalf("gated: %v", env)
	}
	t.Setenv("EXECUTOR_FORK_WIPE", "/scratch:/:/scratch/:/other")
	paths := wipePaths()
	if len(paths) < 2 || paths[0] != "/scratch" || paths[1] != "/other" {
		t.Fatalf("%v", paths)
	}
}

func TestRelayHoldsStartUpOutput(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	var out lockedBuffer
	logs := newRelay(r, &out)
	_, _ = w.WriteString("loading\n")
	time.Sleep(50 * time.Millisecond)
	if out.String() != "" {
		t.Fatalf("start-up output passed before the call: %q", out.String())
	}
	logs.release()
	_, _ = w.WriteString("calling\n")
	w.Close()
	if !logs.wait(time.Now().Add(5 * time.Second)) {
		t.Fatal("no end")
	}
	if out.String() != "loading\ncalling\n" {
		t.Fatalf("%q", out.String())
	}

	r, w, _ = os.Pipe()
	var dropped lockedBuffer
	logs = newRelay(r, &dropped)
	_, _ = w.Write(make([]byte, holdLimit+10))
	w.Close()
	logs.wait(time.Now().Add(5 * time.Second))
	logs.release()
	logs.wait(time.Now().Add(5 * time.Second))
	if got := dropped.String(); len(got) <= holdLimit || !strings.Contains(got, "10 more bytes") {
		t.Fatalf("%d bytes, tail %q", len(got), got[len(got)-80:])
	}
}

type lockedBuffer struct {
	mu   sync.Mutex
	data []byte
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.data = append(b.data, p...)
	return len(p), nil
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.data)
}

func mustMkdir(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
}

func mustWrite(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReadCount(t *testing.T) {
	dir := t.TempDir()
	for text, want := range map[string]uint64{"max\n": math.MaxUint64, "42\n": 42, "7": 7} {
		path := filepath.Join(dir, "count")
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 2; i++ { // read again from the start
			if got, ok := readCount(f); !ok || got != want {
				t.Fatalf("%q: %d %v", text, got, ok)
			}
		}
		f.Close()
	}
	for _, text := range []string{"many\n", ""} {
		path := filepath.Join(dir, "bad")
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := readCount(f); ok {
			t.Fatalf("%q: read", text)
		}
		f.Close()
	}
	if (*room)(nil).enough() {
		t.Fatal("no counters: room")
	}
}
