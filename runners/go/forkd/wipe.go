package forkd

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// stRdonly is ST_RDONLY in statfs(2) f_flags.
const stRdonly = 0x1

// wipePaths is EXECUTOR_FORK_WIPE (colon-separated; default /tmp:/dev/shm) plus /dev/mqueue
// when it exists.
func wipePaths() []string {
	spec, set := os.LookupEnv("EXECUTOR_FORK_WIPE")
	if !set {
		spec = "/tmp:/dev/shm"
	}
	var paths []string
	seen := map[string]bool{}
	add := func(path string) {
		path = filepath.Clean(path)
		if path == "/" || seen[path] {
			return
		}
		seen[path] = true
		paths = append(paths, path)
	}
	for _, path := range strings.Split(spec, ":") {
		if path != "" {
			add(path)
		}
	}
	if info, err := os.Stat("/dev/mqueue"); err == nil && info.IsDir() {
		add("/dev/mqueue")
	}
	return paths
}

// wipe removes every entry under dir, not dir itself, and checks that none is left. A missing
// dir, or one on a read-only file system (nothing could have been written there), is clean.
func wipe(dir string, deadline time.Time) error {
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return fmt.Errorf("wipe %s: %w", dir, err)
	}
	if fs.Flags&stRdonly != 0 {
		return nil
	}
	entries, err := readNames(dir)
	if err != nil {
		return fmt.Errorf("wipe %s: %w", dir, err)
	}
	for _, name := range entries {
		if time.Now().After(deadline) {
			return fmt.Errorf("wipe %s: out of time", dir)
		}
		path := filepath.Join(dir, name)
		if os.RemoveAll(path) != nil {
			// A directory the task made unwritable or unreadable (it owned it, so do we):
			// open it up, then try again.
			makeWritable(path, deadline)
			if err := os.RemoveAll(path); err != nil {
				return fmt.Errorf("wipe %s: %w", dir, err)
			}
		}
	}
	left, err := readNames(dir)
	if err != nil {
		return fmt.Errorf("wipe %s: %w", dir, err)
	}
	if len(left) > 0 {
		return fmt.Errorf("wipe %s: entries left: %q", dir, left)
	}
	return nil
}

func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// makeWritable gives every directory under path (symbolic links not followed) mode 0700.
func makeWritable(path string, deadline time.Time) {
	info, err := os.Lstat(path)
	if err != nil || !info.IsDir() || time.Now().After(deadline) {
		return
	}
	_ = os.Chmod(path, 0o700) // the task is dead: path cannot have become a link meanwhile
	names, err := readNames(path)
	if err != nil {
		return
	}
	for _, name := range names {
		makeWritable(filepath.Join(path, name), deadline)
	}
}
