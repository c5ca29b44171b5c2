// Package function (fork mode): every call starts from the state right after start-up. Reports
// what it found before changing anything (a package counter, files in /tmp and /dev/shm, an
// environment variable), then leaves all four behind. Every call must see {"calls":1} and
// false three times.
package function

import (
	"encoding/json"
	"os"
)

var calls int

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func Execute(input json.RawMessage) (any, error) {
	calls++
	_, envSeen := os.LookupEnv("EXECUTOR_LEFT_BEHIND")
	seen := map[string]any{
		"calls":        calls,
		"file_existed": exists("/tmp/left-behind"),
		"shm_existed":  exists("/dev/shm/left-behind"),
		"env_seen":     envSeen,
	}
	for _, path := range []string{"/tmp/left-behind", "/dev/shm/left-behind"} {
		if err := os.WriteFile(path, []byte("left by an earlier call\n"), 0o644); err != nil {
			return nil, err
		}
	}
	if err := os.Setenv("EXECUTOR_LEFT_BEHIND", "1"); err != nil {
		return nil, err
	}
	return seen, nil
}
