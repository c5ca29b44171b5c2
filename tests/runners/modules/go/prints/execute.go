package function

import (
	"encoding/json"
	"fmt"
	"os"
)

func init() { fmt.Println("printed-at-init") }

func Execute(input json.RawMessage) (any, error) {
	fmt.Println("printed-to-stdout")
	os.Stdout.WriteString("written-to-os-stdout\n")
	return map[string]bool{"printed": true}, nil
}
