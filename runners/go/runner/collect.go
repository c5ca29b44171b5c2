package runner

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"unicode/utf8"
)

// collectSpec is a request's "collect" (docs/RUNNERS.md, "Files back").
type collectSpec struct {
	Path     string `json:"path"`
	MaxBytes *int64 `json:"max_bytes"`
	MaxFiles *int64 `json:"max_files"`
}

// problem is a runner-made error answer.
type problem struct {
	code    string
	message string
}

func parseCollect(raw json.RawMessage) (*collectSpec, *problem) {
	if len(raw) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil, nil
	}
	var spec collectSpec
	if err := json.Unmarshal(raw, &spec); err != nil {
		return nil, &problem{"BAD_REQUEST", `"collect" must be an object {"path", "max_bytes", "max_files"}`}
	}
	if !strings.HasPrefix(spec.Path, "/") || strings.TrimRight(spec.Path, "/") == "" {
		return nil, &problem{"BAD_REQUEST", `"collect.path" must be an absolute directory path`}
	}
	if spec.MaxBytes == nil || *spec.MaxBytes < 0 {
		return nil, &problem{"BAD_REQUEST", `"collect.max_bytes" must be an integer (>= 0)`}
	}
	if spec.MaxFiles == nil || *spec.MaxFiles < 0 {
		return nil, &problem{"BAD_REQUEST", `"collect.max_files" must be an integer (>= 0)`}
	}
	return &spec, nil
}

// emptyDir creates the directory if needed and removes everything in it (os.RemoveAll does
// not follow symlinks).
func emptyDir(path string) *problem {
	fail := func(err error) *problem {
		return &problem{"COLLECT_FAILED", fmt.Sprintf("cannot prepare the collect directory %s: %v", path, err)}
	}
	if err := os.MkdirAll(path, 0o755); err != nil {
		return fail(err)
	}
	info, err := os.Lstat(path)
	if err != nil {
		return fail(err)
	}
	if !info.IsDir() {
		return fail(fmt.Errorf("not a directory"))
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return fail(err)
	}
	for _, entry := range entries {
		if err := os.RemoveAll(filepath.Join(path, entry.Name())); err != nil {
			return fail(err)
		}
	}
	return nil
}

// collect reads the regular files under spec.Path as {relative path: contents}, never
// following a symlink. MaxBytes bounds the files' sizes plus their relative paths' lengths.
func collect(spec *collectSpec) (map[string][]byte, *problem) {
	root := strings.TrimRight(spec.Path, "/")
	files := map[string][]byte{}
	var used int64
	tooLarge := func(what string) *problem {
		return &problem{"COLLECT_TOO_LARGE", fmt.Sprintf("the task left %s in %s (max_bytes=%d, max_files=%d)",
			what, spec.Path, *spec.MaxBytes, *spec.MaxFiles)}
	}
	failed := func(err error) *problem {
		return &problem{"COLLECT_FAILED", fmt.Sprintf("cannot collect the files in %s: %v", spec.Path, err)}
	}
	var walk func(dir, prefix string, depth int) *problem
	walk = func(dir, prefix string, depth int) *problem {
		if depth > 1000 {
			return &problem{"COLLECT_FAILED", fmt.Sprintf("the directories in %s are nested too deeply", spec.Path)}
		}
		entries, err := os.ReadDir(dir) // sorted by name
		if err != nil {
			return failed(err)
		}
		names := make([]string, 0, len(entries))
		for _, entry := range entries {
			names = append(names, entry.Name())
		}
		sort.Strings(names)
		for _, name := range names {
			full := dir + "/" + name
			relative := prefix + name
			if !utf8.ValidString(relative) {
				return &problem{"COLLECT_FAILED", fmt.Sprintf("a file name in %s is not valid UTF-8: %q", spec.Path, relative)}
			}
			info, err := os.Lstat(full)
			if err != nil {
				return failed(err)
			}
			if info.IsDir() {
				if p := walk(full, relative+"/", depth+1); p != nil {
					return p
				}
				continue
			}
			if !info.Mode().IsRegular() {
				continue // symlinks, FIFOs, sockets, devices: regular files only
			}
			if strings.IndexFunc(relative, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
				return &problem{"COLLECT_FAILED", fmt.Sprintf("a file name in %s holds a control character: %q", spec.Path, relative)}
			}
			if int64(len(files)) >= *spec.MaxFiles {
				return tooLarge(fmt.Sprintf("more than %d files", *spec.MaxFiles))
			}
			room := *spec.MaxBytes - used - int64(len(relative))
			data, p := readRegular(full, room)
			if p != nil {
				return failed(p)
			}
			if data == nil {
				continue // replaced since the lstat
			}
			if int64(len(data)) > room {
				return tooLarge(fmt.Sprintf("more than %d bytes", *spec.MaxBytes))
			}
			used += int64(len(relative)) + int64(len(data))
			files[relative] = data
		}
		return nil
	}
	info, err := os.Lstat(root)
	if err != nil {
		return nil, failed(err)
	}
	if !info.IsDir() {
		return nil, failed(fmt.Errorf("not a directory"))
	}
	if p := walk(root, "", 0); p != nil {
		return nil, p
	}
	return files, nil
}

// readRegular reads up to room+1 bytes of a regular file without following a symlink; nil
// (no error) when the path is no longer a regular file.
func readRegular(path string, room int64) ([]byte, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	file := os.NewFile(uintptr(fd), path)
	defer file.Close()
	info, err := file.Stat()
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, nil
	}
	if room < 0 {
		return []byte{0}, nil // over already: any size is too large
	}
	data, err := io.ReadAll(io.LimitReader(file, room+1))
	if err != nil {
		return nil, err
	}
	if data == nil {
		data = []byte{}
	}
	return data, nil
}
