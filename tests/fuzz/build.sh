#!/bin/sh
# tests/fuzz/build.sh SRCDIR BUILDDIR OUTDIR: build the libFuzzer targets
# (tests/fuzz/fuzz_*.c) into OUTDIR with clang, ASan and UBSan: casq's
# sources (all of src/ but the programs' mains) compiled once with coverage, each
# target linked with them. config.h comes from BUILDDIR (configure).
# Environment, from configure through Makefile.am: FUZZ_CC (clang),
# FUZZ_CFLAGS and FUZZ_LIBS (the libraries' flags). Incremental: an
# object is rebuilt when its source or a header is newer.
set -eu

src=$1 build=$2 out=$3
cc=${FUZZ_CC:-clang}
san="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
# -O1: fast enough to fuzz, and ASan's reports stay readable.
cflags="-std=c11 -g -O1 $san -include $build/config.h -I$src/src ${FUZZ_CFLAGS:-}"

mkdir -p "$out/obj"
newest_header=$(ls -t "$src"/src/*.h "$src"/tests/fuzz/*.h "$build/config.h" | head -n 1)

# compile SOURCE OBJECT EXTRA-FLAGS
compile() {
    if [ ! -f "$2" ] || [ "$1" -nt "$2" ] || [ "$newest_header" -nt "$2" ]; then
        echo "  FUZZCC   $1"
        # shellcheck disable=SC2086 # flag lists
        $cc $cflags $3 -c "$1" -o "$2"
    fi
}

objs=""
for c in "$src"/src/*.c; do
    base=$(basename "$c" .c)
    # programs (main.c, casqctl.c and its commands ctl_*.c): libFuzzer
    # has the main; casqctl's CSV reader stands alone (fuzz_csv)
    grep -q '^main(' "$c" && continue
    case $base in ctl_csv) ;; ctl_*) continue ;; esac
    compile "$c" "$out/obj/$base.o" -fsanitize=fuzzer-no-link
    objs="$objs $out/obj/$base.o"
done

for c in "$src"/tests/fuzz/fuzz_*.c; do
    t=$(basename "$c" .c)
    compile "$c" "$out/obj/$t.o" -fsanitize=fuzzer-no-link
    # shellcheck disable=SC2086 # flag lists
    $cc $san -fsanitize=fuzzer -o "$out/$t" "$out/obj/$t.o" $objs \
        ${FUZZ_LIBS:-} -pthread
done
