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

echo "== pebble (the ACME test CA the tls.acme tests run against)"
if [ -z "${MERIDIAN_PEBBLE:-}" ]; then
  if GOBIN="$PWD/bin" go install github.com/letsencrypt/pebble/v2/cmd/pebble@latest; then
    export MERIDIAN_PEBBLE="$PWD/bin/pebble"
  else
    echo "pebble could not be installed: the ACME tests will be skipped (they say so)" >&2
  fi
fi

echo "== chromium (the operations console's browser test, internal/app)"
if [ -z "${MERIDIAN_CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "${CI:-}" = "true" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    if ! (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null); then
      echo "chromium could not be installed: the browser test will be skipped (it says so)" >&2
    fi
  else
    echo "chromium not found: the browser test will be skipped (apt-get install chromium, or set MERIDIAN_CHROMIUM)" >&2
  fi
fi

echo "== knot and unbound (the DNS interop tests in dns: Knot as the differential reference, Unbound as a validating resolver)"
if ! { command -v knotd || [ -x /usr/sbin/knotd ]; } >/dev/null 2>&1 || ! { command -v unbound || [ -x /usr/sbin/unbound ]; } >/dev/null 2>&1; then
  if [ "${CI:-}" = "true" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    if ! (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq knot unbound >/dev/null); then
      echo "knot or unbound could not be installed: the DNS interop tests will be skipped (they say so)" >&2
    fi
  else
    echo "knotd or unbound not found: the DNS interop tests will be skipped (apt-get install knot unbound)" >&2
  fi
fi

echo "== go test -race ./..."
go test -race -count=1 -timeout 600s "$@" ./...

# The proxy suite once more on the other HTTP engine (http.engine; the
# test helpers read MERIDIAN_HTTP_ENGINE), so both stay correct.
echo "== go test -race ./proxy with http.engine std"
MERIDIAN_HTTP_ENGINE=std go test -race -count=1 -timeout 600s "$@" ./proxy
