package function

import (
	"encoding/json"
	"io"
	"os"
)

// Execute reads stdin: it must see EOF, not the next request.
func Execute(input json.RawMessage) (any, error) {
	var in struct {
		N int `json:"n"`
	}
	if err := json.Unmarshal(input, &in); err != nil {
		return nil, err
	}
	read, err := io.ReadAll(os.Stdin)
	if err != nil {
		return nil, err
	}
	return map[string]any{"read": string(read), "child": "", "n": in.N}, nil
}
