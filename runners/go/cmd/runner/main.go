// Command runner is the executor Go runner: the protocol from package runner around the
// Execute function of package function, which the image build takes from the directory named
// by the FUNCTION_DIR build argument (default: the echo function in ../../function).
package main

// fdswap comes first so stdout is moved before any user initialiser runs; then forkd/entry,
// which in fork mode becomes the supervisor before any user initialiser runs (see its doc).
import (
	_ "executor.local/runner/fdswap"
	_ "executor.local/runner/forkd/entry"
)

import (
	"executor.local/runner/function"
	"executor.local/runner/runner"
)

func main() { runner.Main(function.Execute) }
