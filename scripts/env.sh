# Sourced by the scripts: one target dir and one cargo profile for everything,
# so HiGHS's C++ (about 4 minutes on 2 cores) is compiled once per machine
# (the demo and the test build use one set of dependency features, see the
# root Cargo.toml).
# The target dir lives outside the clone unless CARGO_TARGET_DIR is set, so a
# fresh clone on a machine that built examcap before reuses that build.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/examcap/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
