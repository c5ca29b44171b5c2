// Package function (fork mode): sleeps input.seconds, then answers {"slept": seconds}.
package function

import (
	"encoding/json"
	"time"
)

func Execute(input json.RawMessage) (any, error) {
	var in struct {
		Seconds float64 `json:"seconds"`
	}
	if err := json.Unmarshal(input, &in); err != nil {
		return nil, err
	}
	time.Sleep(time.Duration(in.Seconds * float64(time.Second)))
	return map[string]any{"slept": in.Seconds}, nil
}
