// Package function is the stats task for the Go runner.
//
// Go code is compiled into the runner image: the image build takes `package function` from
// the directory named by the FUNCTION_DIR build argument (GO_FUNCTION_DIR in
// docker-bake.hcl), which must lie inside the runners/go build context. To build this one:
//
//	cp -r examples/stats runners/go/functions-stats
//	.venv/bin/executor images build runner-go \
//	    --set GO_FUNCTION_DIR=functions-stats --set REGISTRY=example
//	.venv/bin/executor run --image example/runner-go:latest --input '{"values": [1, 2, 3]}'
//
// (tests/cli/test_examples.py does the same in a temporary copy of the build context.)
package function

import (
	"encoding/json"
	"errors"
)

type input struct {
	Values []float64 `json:"values"`
}

type output struct {
	Count int     `json:"count"`
	Sum   float64 `json:"sum"`
	Mean  float64 `json:"mean"`
}

// Execute returns the count, sum and mean of the input's values.
func Execute(raw json.RawMessage) (any, error) {
	var in input
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, err
	}
	if len(in.Values) == 0 {
		return nil, errors.New("values must not be empty")
	}
	sum := 0.0
	for _, v := range in.Values {
		sum += v
	}
	return output{Count: len(in.Values), Sum: sum, Mean: sum / float64(len(in.Values))}, nil
}
