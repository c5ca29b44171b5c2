package function

import (
	"encoding/json"
	"fmt"
)

func helper(input json.RawMessage) (any, error) {
	return nil, fmt.Errorf("boom: %s", input)
}

func Execute(input json.RawMessage) (any, error) { return helper(input) }
