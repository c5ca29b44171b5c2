// Package function (fork mode): the task's process exits at once with status input.code,
// without answering.
package function

import (
	"encoding/json"
	"os"
)

func Execute(input json.RawMessage) (any, error) {
	in := struct {
		Code int `json:"code"`
	}{Code: 1}
	if err := json.Unmarshal(input, &in); err != nil {
		return nil, err
	}
	os.Exit(in.Code)
	return nil, nil
}
