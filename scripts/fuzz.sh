#!/usr/bin/env bash
# Runs each cargo-fuzz target of fuzz/ for a bounded time (default 60 s each):
#
#   scripts/fuzz.sh [SECONDS] [TARGET ...]
#
# Targets: topic, payload_solar_water_heater, payload_door_controller,
# payload_av_system, config, ticket_builder, central_answer, local_api (all when
# none are named).
# Corpora start from the repository's fixtures (plugins/*/traces, configs/) and
# fuzz/seeds/; they grow in fuzz/corpus/<target>/ (git-ignored). A crash stops the
# run and leaves its input in fuzz/artifacts/<target>/: add it as a regression test
# next to the code it broke, named after the bug.
#
# Stable toolchain: cargo-fuzz passes nightly-only flags to rustc, which the stable
# compiler accepts with RUSTC_BOOTSTRAP=1. Address Sanitizer needs a nightly
# standard library, so the targets run without a sanitizer (--sanitizer none: the
# code under test is safe Rust; libFuzzer still finds panics, overflows (debug
# assertions are on), timeouts and runaway memory).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
all=(topic payload_solar_water_heater payload_door_controller payload_av_system config ticket_builder central_answer local_api)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all[@]}")

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
fuzz=(cargo fuzz run --sanitizer none)

seed() { # seed TARGET: fills fuzz/corpus/TARGET from the fixtures
    local dir="fuzz/corpus/$1"
    mkdir -p "$dir"
    case "$1" in
        payload_*)
            local ty=${1#payload_}
            ty=${ty//_/-}
            for f in plugins/"$ty"/traces/*.jsonl; do cp "$f" "$dir/$(basename "$f")"; done
            ;;
        config)
            for inv in configs/site.toml; do
                { cat configs/agent.toml; printf '\n#--inventory--\n'; cat "$inv"; } >"$dir/example"
            done
            ;;
    esac
}

cargo fuzz build --sanitizer none
mkdir -p target/fuzz-logs
for t in "${targets[@]}"; do
    seed "$t"
    extra=()
    [ -d "fuzz/seeds/$t" ] && extra+=("fuzz/seeds/$t")
    log="target/fuzz-logs/$t.log"
    echo "== $t (${seconds}s, log $log)"
    if ! "${fuzz[@]}" "$t" "fuzz/corpus/$t" "${extra[@]}" -- \
        -max_total_time="$seconds" -max_len=32768 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
        grep -E 'panicked|Test unit written|SUMMARY|ERROR' "$log" >&2 || tail -30 "$log" >&2
        echo "!! $t failed; its crashing input is in fuzz/artifacts/$t/" >&2
        exit 1
    fi
    grep -E '^stat::(number_of_executed_units|peak_rss_mb)|DONE' "$log" || true
done
echo "fuzz: no crash in ${#targets[@]} targets x ${seconds}s"
