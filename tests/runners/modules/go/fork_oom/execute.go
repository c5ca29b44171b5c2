// Package function (fork mode): allocates and touches memory without bound until the OOM
// killer ends the process.
package function

import (
	"encoding/json"
	"os"
)

var kept [][]byte

func Execute(input json.RawMessage) (any, error) {
	page := os.Getpagesize()
	for {
		chunk := make([]byte, 16<<20)
		for i := 0; i < len(chunk); i += page {
			chunk[i] = 1
		}
		kept = append(kept, chunk)
	}
}
