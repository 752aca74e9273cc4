#!/usr/bin/env bash
# Builds every fuzz target and runs each for SECONDS (default 300), one
# after the other, then prints per target the seconds run, the inputs
# executed and the crashes found. Exits 1 if any target crashed (the input
# is in fuzz/artifacts/<target>/; replay it with
# `cargo fuzz run -s none <target> <file>`).
#
#   fuzz/run.sh [SECONDS] [TARGET...]      (FUZZ_SECONDS works too)
#
# Stable Rust is enough: cargo-fuzz builds with `--sanitizer none` (libFuzzer
# through libfuzzer-sys, with coverage and comparison tracing, debug
# assertions and overflow checks). Needs `cargo install cargo-fuzz --locked`
# and a C++ compiler (libFuzzer is built from source).
#
# Each target starts from its checked-in seeds (fuzz/corpus/<target>/, read
# only) and keeps what it finds in fuzz/target/corpus/<target>/ (not checked
# in), so a second run goes on where the first stopped. The seeds are made
# by `cargo test -p shoal-manager --lib fuzzing::tests::write_seeds -- --ignored`
# and `cargo test -p shoal --lib compose::fuzzing::tests::write_seeds -- --ignored`.
set -euo pipefail

cd "$(dirname "$0")"
seconds=${1:-${FUZZ_SECONDS:-300}}
shift || true
if ! [[ $seconds =~ ^[0-9]+$ ]]; then
    echo "usage: $0 [SECONDS] [TARGET...]" >&2
    exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2
    exit 2
fi

if (($# > 0)); then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

# Scratch space for the targets that write files (the WAL, snapshot files,
# credentials): in memory when /dev/shm is there, removed at the end.
shm=/dev/shm
[[ -d $shm && -w $shm ]] || shm=${TMPDIR:-/tmp}
scratch=$(mktemp -d "$shm/shoal-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
export SHOAL_FUZZ_SCRATCH=$scratch

echo "== building ${#targets[@]} targets (cargo fuzz build --sanitizer none)"
cargo fuzz build --sanitizer none

mkdir -p target/logs
declare -a rows
failed=0
for t in "${targets[@]}"; do
    work=target/corpus/$t
    seeds=corpus/$t
    mkdir -p "$work" "artifacts/$t"
    dirs=("$work")
    [[ -d $seeds ]] && dirs+=("$seeds")
    log=target/logs/$t.log
    before=$(find "artifacts/$t" -type f | wc -l)
    echo "== $t: ${seconds}s (log: fuzz/$log)"
    start=$(date +%s)
    set +e
    cargo fuzz run --sanitizer none "$t" "${dirs[@]}" -- \
        -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 \
        -print_final_stats=1 >"$log" 2>&1
    rc=$?
    set -e
    # libFuzzer's own count of the seconds it fuzzed (no build in it); the
    # wall clock when it stopped early (a crash).
    ran=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
    [[ -n $ran ]] || ran=$(($(date +%s) - start))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    after=$(find "artifacts/$t" -type f | wc -l)
    crashes=$((after - before))
    if ((rc != 0 && crashes == 0)); then
        # A crash libFuzzer could not save, or the build/run itself failed.
        crashes=1
    fi
    if ((crashes > 0)); then
        failed=1
        echo "   CRASH: see fuzz/$log and fuzz/artifacts/$t/"
        tail -n 30 "$log" | sed 's/^/   | /'
    fi
    rows+=("$(printf '%-18s %8s %14s %8s' "$t" "$ran" "${execs:-?}" "$crashes")")
done

echo
printf '%-18s %8s %14s %8s\n' target seconds executions crashes
for row in "${rows[@]}"; do
    echo "$row"
done
exit "$failed"
