# shellcheck shell=bash
# Shared by script/server, script/test and script/mint-key (sourced, from
# the repository root).

# nginx lives in /usr/sbin, which is not in a normal user's PATH on Debian.
PATH=$PATH:/usr/sbin:/sbin
export PATH

# binutils: readelf, for tests/integration/test_hardening.py; clang and
# libclang-rt-14-dev (libFuzzer, which clang only recommends): the fuzz
# test of make check and script/fuzz.
CASQ_PACKAGES="build-essential autoconf automake libtool pkg-config libfcgi-dev
liblmdb-dev lmdb-utils libyajl-dev libssl-dev curl openssl python3 wrk binutils
libnginx-mod-stream clang libclang-rt-14-dev"

# Only for the tests (script/test): systemd-analyze and
# systemd-socket-activate check the units, strace casqd's system calls
# against their filter, mandoc the manuals; prometheus (and its promtool)
# scrapes GET /metrics in tests/integration/test_metrics.py, which runs
# its own server: the package's service must not start (see below);
# chromium, its driver and Selenium drive the console in
# tests/integration/test_ui.py.
CASQ_CHECK_PACKAGES="systemd strace mandoc prometheus chromium chromium-driver python3-selenium"

# Only for script/debtest: build the .deb, lint it, make a Debian 12 root.
CASQ_DEB_PACKAGES="debhelper dpkg-dev fakeroot lintian mmdebstrap"

casq_log() {
    printf '%s: %s\n' "${0##*/}" "$*" >&2
}

# casq_install_deps [PACKAGE...]: install the Debian packages casq needs,
# and those named (as root), or say how (otherwise).
casq_install_deps() {
    if ! command -v dpkg-query >/dev/null 2>&1; then
        casq_log "no dpkg: not Debian, skipping the package check"
        return 0
    fi
    local missing="" p apt_line
    for p in $CASQ_PACKAGES "$@"; do
        if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]; then
            missing="$missing $p"
        fi
    done
    # any nginx will do (nginx, nginx-light, nginx-full ...)
    command -v nginx >/dev/null 2>&1 || missing="$missing nginx-light"
    [ -n "$missing" ] || return 0

    apt_line="apt-get install -y --no-install-recommends$missing"
    if [ "$(id -u)" -ne 0 ]; then
        casq_log "missing packages:$missing"
        casq_log "run as root: apt-get update && $apt_line"
        exit 1
    fi
    casq_log "installing:$missing"
    if [ -z "${CASQ_APT_UPDATED:-}" ]; then
        apt-get update
        CASQ_APT_UPDATED=1
    fi
    # No package's service may start: the tests run their own servers
    # (nginx, prometheus) on ports of their own. policy-rc.d is Debian's
    # switch for that (invoke-rc.d and deb-systemd-invoke obey exit 101);
    # one the machine already has is left as it is.
    local policy=/usr/sbin/policy-rc.d made_policy=""
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\n# script/lib.sh: no service starts while casq installs packages\nexit 101\n' >"$policy"
        chmod 0755 "$policy"
        made_policy=1
    fi
    # shellcheck disable=SC2086 # word splitting of the package list
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing ||
        { [ -z "$made_policy" ] || rm -f "$policy"; return 1; }
    [ -z "$made_policy" ] || rm -f "$policy"
}

# Configure (once) and build in the current directory; args go to ./configure.
casq_build() {
    if [ ! -x configure ] || [ configure.ac -nt configure ]; then
        autoreconf -fi
    fi
    # (Re)configure when not yet configured, or configured without the
    # options asked for now (config.status records the command line).
    # A build configured otherwise (e.g. by dpkg-buildpackage, without
    # dependency tracking) would not rebuild its objects: clean first.
    if [ ! -f Makefile ] || ! grep -qF -- "$*" config.status; then
        [ ! -f Makefile ] || make clean >/dev/null
        ./configure "$@"
    fi
    make -j2
}

# casq_render_nginx PREFIX PORT SOCKET CERT CERTKEY KEEP_CONN [WORKER_PROCESSES]
# Renders nginx/casq-dev.conf.in into PREFIX/nginx.conf (absolute paths; the
# console from this tree's web/, so run it from the tree's root) and
# removes the 503 responder's socket that a killed nginx may have left
# (nginx would refuse to start: "Address already in use").
casq_render_nginx() {
    local prefix=$1 user_line=""
    if [ "$(id -u)" -eq 0 ]; then
        user_line="user root;"    # else nginx's workers would run as nobody
    fi
    mkdir -p "$prefix"
    rm -f "$prefix/unavailable.sock"
    sed -e "s|@PREFIX@|$(casq_sed_escape "$prefix")|g" \
        -e "s|@PORT@|$2|g" \
        -e "s|@SOCKET@|$(casq_sed_escape "$3")|g" \
        -e "s|@CERT@|$(casq_sed_escape "$4")|g" \
        -e "s|@CERTKEY@|$(casq_sed_escape "$5")|g" \
        -e "s|@KEEP_CONN@|$6|g" \
        -e "s|@WORKER_PROCESSES@|${7:-1}|g" \
        -e "s|@USER_LINE@|$user_line|g" \
        -e "s|@WEBROOT@|$(casq_sed_escape "$PWD/web")|g" \
        nginx/casq-dev.conf.in >"$prefix/nginx.conf"
    if grep -n '@[A-Z_]*@' "$prefix/nginx.conf" >&2; then
        casq_log "unrendered placeholders in $prefix/nginx.conf"
        return 1
    fi
}

# Escape a replacement string for sed s|...|...|.
casq_sed_escape() {
    printf '%s' "$1" | sed -e 's/[\\|&]/\\&/g'
}

# casq_make_cert DIR: self-signed DIR/cert.pem + DIR/key.pem for
# localhost and 127.0.0.1, unless they exist.
casq_make_cert() {
    [ -s "$1/cert.pem" ] && [ -s "$1/key.pem" ] && return 0
    local out
    mkdir -p "$1"
    if ! out=$(umask 077 && openssl req -x509 -newkey ec \
            -pkeyopt ec_paramgen_curve:prime256v1 -days 825 -nodes \
            -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
            -keyout "$1/key.pem" -out "$1/cert.pem" 2>&1); then
        printf '%s\n' "$out" >&2
        return 1
    fi
}
