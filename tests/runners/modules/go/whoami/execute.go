package function

import (
	"encoding/json"
	"os"
)

func writable(path string) bool {
	return os.WriteFile(path, []byte("x"), 0o644) == nil
}

func Execute(input json.RawMessage) (any, error) {
	return map[string]any{
		"uid":  os.Getuid(),
		"gid":  os.Getgid(),
		"tmp":  writable("/tmp/probe"),
		"app":  writable("/app/probe"),
		"root": writable("/probe"),
	}, nil
}
