# Sourced by the scripts, from the clone's root: one target dir and one cargo
# profile for everything, so HiGHS's C++ (about 4 minutes on 2 cores) is
# compiled once per machine (the demo and the test build use one set of
# dependency features, see the root Cargo.toml).
# The target dir lives outside the clone unless CARGO_TARGET_DIR is set, so a
# fresh clone on a machine that built examcap before reuses that build.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/examcap/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# Sharing the target dir between clones is safe for the dependencies, which
# cargo keys by version, but not for this workspace's own crates: cargo
# takes them as up to date when their files are older than the last build,
# whichever clone that build came from. A clone checked out before another
# clone's build would then test (and run) that clone's code, with its paths
# compiled in. So the target dir records which clone built our crates last,
# and another clone first drops their artifacts (dependencies and HiGHS are
# kept: the rebuild takes a few minutes, not a fresh machine's ten).
examcap_claim_target() {
    local here owner stamp="$CARGO_TARGET_DIR/.examcap-clone"
    here="$(pwd -P)"
    owner="$(cat "$stamp" 2>/dev/null || true)"
    if [ "$owner" != "$here" ]; then
        # A target dir without a record comes from before this check: who
        # built it is unknown, so the same applies.
        if [ -d "$CARGO_TARGET_DIR/release" ]; then
            echo "examcap: $CARGO_TARGET_DIR holds a build from" \
                "${owner:-another clone (not recorded)}; rebuilding this clone's crates" >&2
            cargo clean --quiet --release -p examcap -p examcap-solver -p examcap-loadtest
        fi
        mkdir -p "$CARGO_TARGET_DIR"
        printf '%s\n' "$here" >"$stamp"
    fi
}

# The check above and the build and run after it must not interleave with
# another clone's: a clone that cleaned and rebuilt while this one's tests ran
# would swap the binaries under them. So the scripts source this file as
# `. scripts/env.sh --lock scripts/NAME "$@"` (a path from the clone's root,
# where they run): the (bash) script is run again under an
# exclusive lock on the target dir, held by `flock` for as long as the script
# runs. `flock -o` keeps the lock out of the script's children, so a server a
# test leaves behind cannot hold it. Sourcing by hand in a shell takes no
# lock (it would hold it for the shell's whole life).
examcap_run_locked() {
    local lock="$CARGO_TARGET_DIR/.examcap-lock"
    if [ "${EXAMCAP_LOCK_HELD:-}" = "$lock" ] || ! command -v flock >/dev/null 2>&1; then
        return 0
    fi
    mkdir -p "$CARGO_TARGET_DIR"
    if ! flock -n "$lock" true; then
        echo "examcap: waiting for another build or test run in $CARGO_TARGET_DIR" \
            "(lock $lock)" >&2
    fi
    EXAMCAP_LOCK_HELD="$lock" exec flock -o "$lock" bash "$@"
}
if [ "${1:-}" = "--lock" ]; then
    shift
    examcap_run_locked "$@"
fi
examcap_claim_target
