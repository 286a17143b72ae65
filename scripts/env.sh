# Sourced by the scripts: one target dir and one cargo profile for everything,
# so HiGHS's C++ (about 4 minutes on 2 cores) is compiled once per machine and
# set of dependency features (the test build enables a few more than the demo).
# The target dir lives outside the clone unless CARGO_TARGET_DIR is set, so a
# fresh clone on a machine that built examcap before reuses that build.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/examcap/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
