package function

import (
	"encoding/json"
	"time"
)

// Execute does its work on another goroutine, the Go counterpart of an async function.
func Execute(input json.RawMessage) (any, error) {
	done := make(chan json.RawMessage)
	go func() {
		time.Sleep(10 * time.Millisecond)
		done <- input
	}()
	return map[string]any{"echo": <-done, "async": true}, nil
}
