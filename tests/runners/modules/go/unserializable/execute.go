package function

import "encoding/json"

func Execute(input json.RawMessage) (any, error) {
	return map[string]any{"channel": make(chan int)}, nil
}
