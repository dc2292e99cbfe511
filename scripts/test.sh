#!/usr/bin/env bash
# The whole test suite: go vet, a gofmt check, and go test -race ./...
# Usage: ./scripts/test.sh [extra go test flags]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v go >/dev/null || { echo "test.sh: Go is needed (https://go.dev/dl/)" >&2; exit 1; }

echo "== go mod download"
go mod download

echo "== go vet ./..."
go vet ./...

echo "== gofmt -l"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './vendor/*'))
if [ -n "$unformatted" ]; then
  echo "these files need gofmt -w:" >&2
  echo "$unformatted" >&2
  exit 1
fi

echo "== go test -race ./..."
go test -race -count=1 -timeout 600s "$@" ./...
