#!/bin/sh
# tests/fuzz/coverage.sh SRCDIR BUILDDIR OUTDIR CORPUS-DIR: line coverage
# of casq's sources by a corpus (CORPUS-DIR/<target>/, e.g. var/fuzz/corpus
# after script/fuzz, plus the seeds): builds the targets with clang's
# source-based coverage (no sanitizers) in OUTDIR, runs each once over
# its corpus, and prints llvm-cov's per-file report. Same environment as
# build.sh (FUZZ_CC, FUZZ_CFLAGS, FUZZ_LIBS).
set -eu

src=$1 build=$2 out=$3 corpus=$4
cc=${FUZZ_CC:-clang}
cov="-fprofile-instr-generate -fcoverage-mapping"
mkdir -p "$out"
objs=""
for c in "$src"/src/*.c; do
    b=$(basename "$c" .c)
    grep -q '^main(' "$c" && continue
    case $b in ctl_csv) ;; ctl_*) continue ;; esac    # as build.sh
    # shellcheck disable=SC2086
    $cc -std=c11 -g -O1 $cov -fsanitize=fuzzer-no-link -include "$build/config.h" \
        -I"$src/src" ${FUZZ_CFLAGS:-} -c "$c" -o "$out/$b.o"
    objs="$objs $out/$b.o"
done
profiles=""
for c in "$src"/tests/fuzz/fuzz_*.c; do
    t=$(basename "$c" .c)
    # shellcheck disable=SC2086
    $cc -std=c11 -g -O1 $cov -fsanitize=fuzzer -include "$build/config.h" -I"$src/src" \
        ${FUZZ_CFLAGS:-} "$c" $objs ${FUZZ_LIBS:-} -pthread -o "$out/$t"
    LLVM_PROFILE_FILE="$out/$t.profraw" LSAN_OPTIONS=detect_leaks=0 \
        "$out/$t" -runs=0 "$src/tests/fuzz/corpus/$t" ${corpus:+"$corpus/$t"} >"$out/$t.log" 2>&1 || true
    profiles="$profiles $out/$t.profraw"
done
# shellcheck disable=SC2086
llvm-profdata merge -o "$out/all.profdata" $profiles
first="" objects=""
for t in "$out"/fuzz_*; do
    case $t in *.*) continue ;; esac
    if [ -z "$first" ]; then first=$t; else objects="$objects -object $t"; fi
done
# shellcheck disable=SC2086
llvm-cov report "$first" $objects -instr-profile="$out/all.profdata" "$src"/src/*.c
