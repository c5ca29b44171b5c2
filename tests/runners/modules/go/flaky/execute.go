package function

import (
	"encoding/json"
	"errors"
)

func Execute(input json.RawMessage) (any, error) {
	var in struct {
		Fail bool `json:"fail"`
		N    int  `json:"n"`
	}
	if err := json.Unmarshal(input, &in); err != nil {
		return nil, err
	}
	if in.Fail {
		return nil, errors.New("asked to fail")
	}
	return map[string]int{"n": in.N}, nil
}
