# The executor images: one source of truth for tags, contexts, Dockerfiles and build args.
#
#   docker buildx bake runners          # the three runner images
#   executor images build runners       # the same without buildx, through the Engine API
#
# The wheel carries this file and the contexts it names (executor/_data/), so `executor images
# build` works from an installed package too.
#
# Variables default to official base images. On a machine without a registry, `make bases`
# builds Debian-based replacements and records the values to use in .state/bake-vars.json,
# which `make images` / `executor images build` pick up automatically in a checkout (elsewhere:
# `--set PYTHON_BASE=IMAGE` and so on).
#
# A custom Go function: GO_FUNCTION_DIR names a directory inside runners/go holding
# `package function` with `func Execute(input json.RawMessage) (any, error)`, e.g.
#   GO_FUNCTION_DIR=functions/stats docker buildx bake runner-go
# (see docs/RUNNERS.md).

variable "REGISTRY" {
  default = "executor"
}

variable "VERSION" {
  # The package version (pyproject.toml); `executor images build` passes it in.
  default = "0.3.0"
}

variable "PYTHON_BASE" {
  default = "python:3.12-slim"
}

variable "NODE_BASE" {
  default = "node:22-slim"
}

# Node with npm, for the orval build stage only.
variable "NODE_BUILD_BASE" {
  default = "node:22-slim"
}

variable "GO_BUILD_BASE" {
  default = "golang:1.23"
}

variable "GO_RUNTIME_BASE" {
  default = "scratch"
}

variable "GO_FUNCTION_DIR" {
  default = "function"
}

# Shared by every image: OCI labels (the builder adds dev.executor.context-hash).
target "_common" {
  labels = {
    "org.opencontainers.image.version" = VERSION
    "org.opencontainers.image.vendor"  = "executor"
  }
}

group "default" {
  targets = ["runners", "generator-orval", "runner-judge"]
}

group "runners" {
  targets = ["runner-python", "runner-node", "runner-go"]
}

target "runner-python" {
  inherits   = ["_common"]
  context    = "runners/python"
  dockerfile = "Dockerfile"
  args = {
    BASE_IMAGE = "${PYTHON_BASE}"
  }
  tags = ["${REGISTRY}/runner-python:${VERSION}", "${REGISTRY}/runner-python:latest"]
}

# The Python runner plus Debian's compilers (CodeExecutor's c, cpp, rust, java, go; judging)
# and the Node base's node (Node programs and checkers judged next to any other language).
# Its one RUN step installs them with apt: it needs the network (a few minutes).
target "runner-judge" {
  inherits   = ["_common"]
  context    = "runners/python"
  dockerfile = "Dockerfile.judge"
  args = {
    BASE_IMAGE = "${PYTHON_BASE}"
    NODE_IMAGE = "${NODE_BASE}"
  }
  tags = ["${REGISTRY}/runner-judge:${VERSION}", "${REGISTRY}/runner-judge:latest"]
}

# Context runners/ (not runners/node): the image also carries the Go fork-mode supervisor,
# executor-forkd, compiled from runners/go/forkd (runners/.dockerignore trims the rest).
target "runner-node" {
  inherits   = ["_common"]
  context    = "runners"
  dockerfile = "node/Dockerfile"
  # The Go build needs no network (standard library only, GOPROXY=off).
  network = "none"
  args = {
    BASE_IMAGE    = "${NODE_BASE}"
    GO_BUILD_BASE = "${GO_BUILD_BASE}"
  }
  tags = ["${REGISTRY}/runner-node:${VERSION}", "${REGISTRY}/runner-node:latest"]
}

target "runner-go" {
  inherits   = ["_common"]
  context    = "runners/go"
  dockerfile = "Dockerfile"
  # The Go build needs no network (standard library only, GOPROXY=off).
  network = "none"
  args = {
    GO_BUILD_BASE = "${GO_BUILD_BASE}"
    BASE_IMAGE    = "${GO_RUNTIME_BASE}"
    FUNCTION_DIR  = "${GO_FUNCTION_DIR}"
  }
  tags = ["${REGISTRY}/runner-go:${VERSION}", "${REGISTRY}/runner-go:latest"]
}

# FROM the node runner (build runner-node first), plus orval installed with npm.
target "generator-orval" {
  inherits   = ["_common"]
  context    = "generators/orval"
  dockerfile = "Dockerfile"
  args = {
    BASE_IMAGE      = "${REGISTRY}/runner-node:${VERSION}"
    NODE_BUILD_BASE = "${NODE_BUILD_BASE}"
  }
  tags = ["${REGISTRY}/generator-orval:${VERSION}", "${REGISTRY}/generator-orval:latest"]
}
