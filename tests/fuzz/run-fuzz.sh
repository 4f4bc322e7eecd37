#!/bin/sh
# tests/fuzz/run-fuzz.sh: build the libFuzzer targets (build.sh) and, as
# TAP, for each target: replay tests/fuzz/regress/<target>/ (inputs of
# fixed bugs: must run clean), fuzz for FUZZ_SECONDS from the seed corpus
# tests/fuzz/corpus/<target>/ (must find nothing), and replay
# tests/fuzz/known/<target>/ (known bugs not ours to fix: TODO tests,
# expected to crash; one that stops crashing shows as XPASS).
#
# Environment (Makefile.am sets it for make check; script/fuzz for long
# runs): CASQ_SRCDIR, CASQ_BUILDDIR; FUZZ_CC, FUZZ_CFLAGS, FUZZ_LIBS from
# configure; FUZZ_SECONDS per target (default 30); FUZZ_WORKDIR, where
# the corpus grows, crash inputs land and each target's log is kept
# (default a fresh $CASQ_BUILDDIR/var/fuzz-work); FUZZ_TARGETS, a subset
# (e.g. "fuzz_json fuzz_route"). One fuzzer process at a time, with a
# fixed seed, so a run on one machine repeats itself.
set -u

src=${CASQ_SRCDIR:-.}
build=${CASQ_BUILDDIR:-.}
seconds=${FUZZ_SECONDS:-30}
n=0
failed=0

tap() {     # tap ok|not-ok DESCRIPTION [DIRECTIVE]
    n=$((n + 1))
    if [ "$1" = ok ]; then
        echo "ok $n - $2${3:+ # $3}"
    else
        echo "not ok $n - $2${3:+ # $3}"
        [ -n "${3:-}" ] || failed=1
    fi
}

diag_file() {   # the last lines of a log, as TAP diagnostics
    tail -n "${2:-25}" "$1" | sed 's/^/# /'
}

if [ -z "${FUZZ_CC:-}" ]; then
    echo "1..0 # SKIP no clang that links -fsanitize=fuzzer (Debian: apt-get install clang libclang-rt-14-dev)"
    exit 0
fi

bin=$build/var/fuzz-build
work=${FUZZ_WORKDIR:-$build/var/fuzz-work}
[ -n "${FUZZ_WORKDIR:-}" ] || rm -rf "$work"
mkdir -p "$work"

if FUZZ_CC=$FUZZ_CC sh "$src/tests/fuzz/build.sh" "$src" "$build" "$bin" >"$work/build.log" 2>&1; then
    tap ok "fuzz: the targets build with $FUZZ_CC, ASan and UBSan"
else
    tap not-ok "fuzz: the targets build with $FUZZ_CC, ASan and UBSan"
    diag_file "$work/build.log"
    echo "1..$n"
    exit 1
fi

if missing=$(python3 "$src/tests/fuzz/check-dict.py" "$src" 2>&1); then
    tap ok "fuzz: casq.dict names every route and parameter of src/route_*.c"
else
    tap not-ok "fuzz: casq.dict names every route and parameter of src/route_*.c"
    echo "$missing" | sed 's/^/# add to tests\/fuzz\/casq.dict: /'
fi

targets=${FUZZ_TARGETS:-$(cd "$src/tests/fuzz" && ls fuzz_*.c | sed 's/\.c$//')}
# No leak is suppressed (lsan.supp says why); the file stays for new ones.
LSAN_OPTIONS=suppressions=$src/tests/fuzz/lsan.supp:print_suppressions=0
UBSAN_OPTIONS=print_stacktrace=1
export LSAN_OPTIONS UBSAN_OPTIONS

for t in $targets; do
    case $t in
        fuzz_fcgi)  max_len=16384 ;;
        fuzz_route) max_len=8192 ;;
        *)          max_len=4096 ;;
    esac

    if [ -d "$src/tests/fuzz/regress/$t" ]; then
        if "$bin/$t" "$src/tests/fuzz/regress/$t"/* >"$work/$t.regress.log" 2>&1; then
            tap ok "$t: the inputs of fixed bugs (tests/fuzz/regress/$t) run clean"
        else
            tap not-ok "$t: the inputs of fixed bugs (tests/fuzz/regress/$t) run clean"
            diag_file "$work/$t.regress.log" 40
        fi
    fi

    mkdir -p "$work/corpus/$t"
    # The fuzzer's own limit stops it; timeout(1) only guards a hang.
    if timeout $((seconds * 2 + 120)) "$bin/$t" -seed=1 -max_total_time="$seconds" \
            -timeout=10 -rss_limit_mb=2048 -max_len="$max_len" -print_final_stats=1 \
            -dict="$src/tests/fuzz/casq.dict" -artifact_prefix="$work/$t-" \
            "$work/corpus/$t" "$src/tests/fuzz/corpus/$t" >"$work/$t.log" 2>&1; then
        stats=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$work/$t.log" | tail -n 1 |
            sed -E 's/^#([0-9]+)[[:space:]]+DONE[[:space:]]+cov: ([0-9]+) ft: ([0-9]+).*exec\/s: ([0-9]+).*/\1 runs, cov \2, ft \3, \4 exec\/s/')
        tap ok "$t: ${seconds}s of fuzzing find nothing ($stats)"
    else
        tap not-ok "$t: ${seconds}s of fuzzing find nothing (log: $work/$t.log)"
        grep -E 'ERROR|SUMMARY|invariant failed|Test unit written' "$work/$t.log" | sed 's/^/# /'
        diag_file "$work/$t.log" 40
    fi

    if [ -d "$src/tests/fuzz/known/$t" ]; then
        for f in "$src/tests/fuzz/known/$t"/*; do
            [ -f "$f" ] || continue
            name=${f#"$src"/tests/fuzz/}
            # without suppressions
            if LSAN_OPTIONS= "$bin/$t" "$f" >"$work/$t.known.log" 2>&1; then
                tap ok "$t: $name runs clean" "TODO known bug, see tests/fuzz/README.md"
            else
                tap not-ok "$t: $name runs clean" "TODO known bug, see tests/fuzz/README.md"
            fi
        done
    fi
done

echo "1..$n"
exit $failed
