#!/usr/bin/env bash
# Builds the benchmark peers into build/bench/peers/ (bench fixtures, not product):
#   gorilla-hub, gorilla-redis  our seed-style gorilla/websocket servers (source here)
#   bin/centrifugo             Centrifugo v5.4.9 (the last v5), from the Go module proxy
# Everything third-party comes from the Go module proxy through go.mod/go.sum (checked by
# go.sum); nothing is vendored. Skips what is already built and newer than its sources.
# Needs Go (GO=/usr/local/go/bin/go by default) and the module proxy (or a warm module cache).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
out="$root/build/bench/peers"
GO=${GO:-/usr/local/go/bin/go}
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"
export CGO_ENABLED=0

if ! [ -x "$GO" ]; then
    echo "peers: no Go toolchain at $GO (set GO=...)" >&2
    exit 1
fi
mkdir -p "$out/bin"

fresh() { # fresh <binary> <dir>: the binary exists and is newer than every file in dir
    [ -x "$1" ] && [ -z "$(find "$2" -newer "$1" -type f -print -quit)" ]
}

for peer in gorilla-hub gorilla-redis; do
    if fresh "$out/$peer" "$here/$peer"; then
        echo "peers: $peer up to date"
        continue
    fi
    echo "peers: building $peer"
    (cd "$here/$peer" && "$GO" build -trimpath -o "$out/$peer" .)
done

# Centrifugo: `go install github.com/centrifugal/centrifugo/v5@v5.4.9` is what we mean, but
# that form asks the proxy for the module's version list (to look for a deprecation), which
# a filtered proxy may refuse; the tool module in centrifugo/ pins the same release and
# `go install tool` builds it.
if [ -x "$out/bin/centrifugo" ] && [ "$out/bin/centrifugo" -nt "$here/centrifugo/go.mod" ] &&
    [ "$out/bin/centrifugo" -nt "$here/centrifugo/go.sum" ]; then
    echo "peers: centrifugo up to date"
else
    echo "peers: building centrifugo (a minute or two the first time)"
    version=$(sed -n 's|^[[:space:]]*github.com/centrifugal/centrifugo/v5 v\([^ ]*\).*|\1|p' \
        "$here/centrifugo/go.mod")
    (cd "$here/centrifugo" && GOBIN="$out/bin" "$GO" install -trimpath \
        -ldflags "-X github.com/centrifugal/centrifugo/v5/internal/build.Version=$version" tool)
fi
"$out/bin/centrifugo" version
