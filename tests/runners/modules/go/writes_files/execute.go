package function

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
)

// Execute writes input.write ({relative path: text}) under input.dir; input.symlink names a
// symlink to make there. It returns the directory's entries before writing.
func Execute(input json.RawMessage) (any, error) {
	var in struct {
		Dir     string            `json:"dir"`
		Write   map[string]string `json:"write"`
		Symlink string            `json:"symlink"`
	}
	if err := json.Unmarshal(input, &in); err != nil {
		return nil, err
	}
	var found []string
	if entries, err := os.ReadDir(in.Dir); err == nil {
		found = []string{}
		for _, entry := range entries {
			found = append(found, entry.Name())
		}
		sort.Strings(found)
	}
	for name, text := range in.Write {
		path := filepath.Join(in.Dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			return nil, err
		}
	}
	if in.Symlink != "" {
		if err := os.Symlink("/etc/hostname", filepath.Join(in.Dir, in.Symlink)); err != nil {
			return nil, err
		}
	}
	return map[string]any{"found": found}, nil
}
