// Package function is the default task of the Go runner image: return the input unchanged.
//
// Your own function is a directory holding `package function` with
//
//	func Execute(input json.RawMessage) (any, error)
//
// built in with the FUNCTION_DIR build argument (see docs/RUNNERS.md).
package function

import "encoding/json"

// Execute returns its input unchanged.
func Execute(input json.RawMessage) (any, error) { return input, nil }
