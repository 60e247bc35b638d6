#!/usr/bin/env bash
# Generates the Go client and builds its e2e program, offline: buf generate
# (buf.gen.yaml) runs Debian's protoc-gen-go and protoc-gen-go-grpc on
# proto/accord/v1 into the GOPATH tree gen/src (package accord/v1), then
# `go build` in GOPATH mode (GO111MODULE=off) compiles e2e/ against it and
# the Debian-packaged sources in /usr/share/gocode (grpc, protobuf, genproto)
# into gen/bin/e2e. Idempotent: run it again after a change to proto/.
#
#   BUF  the buf binary (default: buf on PATH, else the one .ci/run or the
#        TypeScript client installs with npm)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
gocode=/usr/share/gocode
cd "$here"

missing=()
for tool in go protoc-gen-go protoc-gen-go-grpc; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
for pkg in google.golang.org/grpc google.golang.org/protobuf google.golang.org/genproto \
  github.com/golang/protobuf; do
  [ -d "$gocode/src/$pkg" ] || missing+=("$gocode/src/$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "generate.sh: missing ${missing[*]}; install Debian's packages:" >&2
  echo "  apt-get install golang-go protoc-gen-go protoc-gen-go-grpc golang-google-grpc-dev golang-google-genproto-dev golang-github-golang-protobuf-1-5-dev" >&2
  exit 1
fi

buf="${BUF:-}"
if [ -z "$buf" ]; then
  for candidate in "$(command -v buf || true)" "$repo/target/ci-tools/node_modules/.bin/buf" \
    "$repo/clients/typescript/node_modules/.bin/buf"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then
      buf="$candidate"
      break
    fi
  done
fi
if [ -z "$buf" ]; then
  echo "generate.sh: no buf; install it (npm install --prefix $repo/target/ci-tools @bufbuild/buf@1.75.0) or set BUF" >&2
  exit 1
fi

"$buf" generate
export GO111MODULE=off GOPATH="$here/gen:$gocode" GOFLAGS=
go vet ./e2e
go build -o gen/bin/e2e ./e2e
echo "generate.sh: gen/src/accord/v1 generated from ../../proto; gen/bin/e2e built ($(go version))"
