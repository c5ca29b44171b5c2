// Package function (fork mode): with input.code, the task's process exits at once with that
// status, without answering; without one it answers {"exited": false}.
package function

import (
	"encoding/json"
	"os"
)

func Execute(input json.RawMessage) (any, error) {
	var in struct {
		Code *int `json:"code"`
	}
	if err := json.Unmarshal(input, &in); err != nil {
		return nil, err
	}
	if in.Code == nil {
		return map[string]bool{"exited": false}, nil
	}
	os.Exit(*in.Code)
	return nil, nil
}
