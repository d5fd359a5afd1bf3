#!/usr/bin/env bash
# Our network servers beside Go's, tokio's and may's: builds `net_server`
# (benches/src/bin/net_server.rs), installs it as $BIN/anchor_ours_server and runs the
# anchors' net.sh (../shared/anchors/net.sh from the workspace root; read-only, not edited)
# with IMPLS="go tokio may ours".
#
#   benches/net.sh [reps]          build, install, run every combination reps times (default 3)
#   benches/net.sh --summarize     only rebuild summary.tsv and idle.tsv from raw/
#
# Needs the peers built first: ANCHORS_OUT=/tmp/anchors ../shared/anchors/build.sh (bin/
# anchor_{go,tokio,may}_server, anchor_go_echo_client, anchor_go_idle_conns; wrk).
#
# Every knob of net.sh passes through the environment (its header lists them: IMPLS,
# WORKLOADS, PROCS, CONNS, LOAD_S, SIZE, IDLE_CONNS, SKIP_IDLE, SKIP_LOAD, LOAD_WAIT,
# QUIET_WAIT, RETRIES, BASE_PORT, ANCHORS_OUT, BIN, RESULTS, ...), plus:
#   SKIP_BUILD=1            install the net_server already built, do not run cargo
#   NET_SH=path             the anchors' net.sh, if it is elsewhere
#   NET_SERVER_STACK_KIB=n  goroutine stack size of our server (default: the crate's 256 KiB)
#
# Results land in $RESULTS (default $ANCHORS_OUT/results/net, ANCHORS_OUT default /tmp/anchors):
#   summary.tsv, idle.tsv   medians per impl (ours included, see below), env.txt (with a line
#   on our build appended), raw/runs.tsv, raw/idle.tsv, raw/*.log (every run's server and load
#   generator output).
#
# net.sh's own summary loops over "go tokio may" only, so after it this script rebuilds
# summary.tsv and idle.tsv with a temporary copy of net.sh whose two summary loops also list
# "ours" (same medians, same columns); the copy is used for --summarize only.
#
# Examples (from the workspace root):
#   benches/net.sh 3
#   LOAD_S=3 PROCS=1 CONNS=50 SKIP_IDLE=1 LOAD_WAIT=0 QUIET_WAIT=0 RETRIES=0 IMPLS="tokio ours" benches/net.sh 1
#   SKIP_LOAD=1 IDLE_CONNS=10000 PROCS=1 IMPLS="tokio ours" LOAD_WAIT=0 QUIET_WAIT=0 benches/net.sh 1
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
NET_SH="${NET_SH:-$ROOT/../shared/anchors/net.sh}"
export ANCHORS_OUT="${ANCHORS_OUT:-/tmp/anchors}"
export BIN="${BIN:-$ANCHORS_OUT/bin}"
export RESULTS="${RESULTS:-$ANCHORS_OUT/results/net}"
export IMPLS="${IMPLS:-go tokio may ours}"
SUMMARY_IMPLS="go tokio may ours"

[ -f "$NET_SH" ] || {
    echo "benches/net.sh: $NET_SH not found (set NET_SH)" >&2
    exit 1
}

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

# net.sh's summary, with ours in its impl loops.
summarize() {
    local copy="$TMP/net_summary.sh" n
    n="$(grep -c 'for i in go tokio may; do' "$NET_SH" || true)"
    if [ "$n" -eq 0 ]; then
        # net.sh changed: its own summary is all there is.
        echo "benches/net.sh: net.sh's summary loops look different; its own summary stands" >&2
        bash "$NET_SH" --summarize
        return
    fi
    sed "s/for i in go tokio may; do/for i in $SUMMARY_IMPLS; do/" "$NET_SH" >"$copy"
    bash "$copy" --summarize
}

if [ "${1:-}" = "--summarize" ]; then
    summarize
    exit $?
fi

if [[ " $IMPLS " == *" ours "* ]]; then
    if [ -z "${SKIP_BUILD:-}" ]; then
        (cd "$ROOT" && cargo build --release -p benches --bin net_server)
    fi
    built="${CARGO_TARGET_DIR:-$ROOT/target}/release/net_server"
    [ -x "$built" ] || {
        echo "benches/net.sh: $built missing (build it, or unset SKIP_BUILD)" >&2
        exit 1
    }
    mkdir -p "$BIN"
    install -m 755 "$built" "$BIN/anchor_ours_server"
    commit="$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    if [ -n "$(cd "$ROOT" && git status --porcelain -- scheduler benches Cargo.toml Cargo.lock 2>/dev/null)" ]; then
        commit="$commit (with uncommitted changes)"
    fi
    ours_note="ours: anchor_ours_server = net_server from $commit, $(rustc --version 2>/dev/null || true), sha256 $(sha256sum "$BIN/anchor_ours_server" | cut -c1-16), NET_SERVER_STACK_KIB=${NET_SERVER_STACK_KIB:-default}"
    echo "benches/net.sh: $ours_note"
fi

rc=0
bash "$NET_SH" "$@" || rc=$?
[ -n "${ours_note:-}" ] && [ -f "$RESULTS/env.txt" ] && echo "$ours_note" >>"$RESULTS/env.txt"
echo "benches/net.sh: summary with ours (net.sh's above lists go, tokio and may only):"
summarize
exit "$rc"
