// Package function (fork mode): {"grow": true} allocates and touches memory without bound
// until the OOM killer ends the process; any other input answers {"grew": false}.
package function

import (
	"encoding/json"
	"os"
)

var kept [][]byte

func Execute(input json.RawMessage) (any, error) {
	var in struct {
		Grow bool `json:"grow"`
	}
	if err := json.Unmarshal(input, &in); err != nil {
		return nil, err
	}
	if !in.Grow {
		return map[string]bool{"grew": false}, nil
	}
	page := os.Getpagesize()
	for {
		chunk := make([]byte, 16<<20)
		for i := 0; i < len(chunk); i += page {
			chunk[i] = 1
		}
		kept = append(kept, chunk)
	}
}
