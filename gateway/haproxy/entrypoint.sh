#!/bin/sh
# Entrypoint of the chatbroker HAProxy image: puts the certificate of the TLS listener where
# haproxy.cfg loads it (HAPROXY_TLS_CRT), then runs the command as the user `haproxy`.
#
# HAPROXY_TLS_SOURCE (default /etc/haproxy/tls: compose mounts CHAT_TLS_DIR there, read-only)
# holds, per site, one of:
#   <name>.pem                    the certificate chain and its private key in one file
#   <name>.pem and <name>.key     the chain and the key apart
#   fullchain.pem and privkey.pem certbot's layout (real files: a symbolic link must resolve
#                                 inside the mounted directory)
# Each site is copied as one file readable by `haproxy` only, so the mounted files may be
# root's with mode 0600. With no site there, a self-signed certificate for localhost is
# made (kept for the container's life) and a warning logged, unless HAPROXY_TLS_SELF_SIGNED
# is 0: then the container refuses to start. An empty HAPROXY_TLS_BIND (no TLS listener)
# skips all of this. Certificates are read at start: after renewing one, restart haproxy.
set -eu

SRC=${HAPROXY_TLS_SOURCE:-/etc/haproxy/tls}
DST=${HAPROXY_TLS_CRT:-/run/haproxy-tls/crt}
DST=${DST%/}
CACHE=$(dirname "$DST")/self-signed.pem
RUN_AS=haproxy

log() {
    printf '%s %s tls %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$1" "$2" >&2
}

die() {
    log ERROR "$1"
    exit 1
}

# One line about a certificate: subject, names, expiry; warns when it is (nearly) expired.
describe() {
    openssl x509 -in "$1" -noout >/dev/null 2>&1 || die "$2: not a readable PEM certificate"
    info=$(openssl x509 -in "$1" -noout -subject -ext subjectAltName -enddate 2>/dev/null |
        tr -s ' \n' ' ')
    log INFO "https:// and wss:// on ${HAPROXY_TLS_BIND} with $2: ${info% }"
    if ! openssl x509 -in "$1" -noout -checkend 0 >/dev/null 2>&1; then
        log WARN "$2 has expired: clients will refuse it"
    elif ! openssl x509 -in "$1" -noout -checkend 1209600 >/dev/null 2>&1; then
        log WARN "$2 expires within 14 days"
    fi
}

# add <chain file> <key file or empty> <output name>
add() {
    for f in "$1" ${2:+"$2"}; do
        if [ -L "$f" ] && [ ! -e "$f" ]; then
            die "$f links to $(readlink "$f"), which is not inside the mounted directory: mount the directory that holds the files, or copy them with cp -L"
        fi
        [ -r "$f" ] || die "cannot read $f as $(id -un)"
    done
    out="$DST/$3"
    if [ -n "$2" ]; then
        { cat "$1"; echo; cat "$2"; } >"$out"
    else
        cat "$1" >"$out"
    fi
    grep -q -e '-----BEGIN CERTIFICATE-----' "$out" ||
        die "$1 holds no certificate: give each site as <name>.pem (chain and key), <name>.pem and <name>.key, or fullchain.pem and privkey.pem"
    if grep -q -e '-----BEGIN ENCRYPTED PRIVATE KEY-----' -e 'Proc-Type: 4,ENCRYPTED' "$out"; then
        die "the private key for $1 is encrypted: HAProxy needs it without a passphrase"
    fi
    grep -q -e 'PRIVATE KEY-----' "$out" ||
        die "no private key for $1: put it in the same file, or in ${1%.pem}.key"
    describe "$out" "$1${2:+ and $2}"
}

collect() {
    certbot=
    if [ -e "$SRC/fullchain.pem" ] || [ -L "$SRC/fullchain.pem" ]; then
        if [ -e "$SRC/privkey.pem" ] || [ -L "$SRC/privkey.pem" ]; then
            certbot=1
            add "$SRC/fullchain.pem" "$SRC/privkey.pem" fullchain.pem
        fi
    fi
    for f in "$SRC"/*.pem; do
        [ -e "$f" ] || [ -L "$f" ] || continue
        name=$(basename "$f")
        case "$certbot:$name" in
        1:fullchain.pem | 1:privkey.pem | 1:cert.pem | 1:chain.pem) continue ;;
        esac
        key="${f%.pem}.key"
        [ -e "$key" ] || [ -L "$key" ] || key=
        add "$f" "$key" "$name"
    done
}

self_signed() {
    case "${HAPROXY_TLS_SELF_SIGNED:-1}" in
    0 | no | false | off)
        die "no certificate in $SRC (CHAT_TLS_DIR) and self-signed certificates are off (CHAT_TLS_SELF_SIGNED=0)"
        ;;
    esac
    if ! openssl x509 -in "$CACHE" -noout -checkend 86400 >/dev/null 2>&1; then
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 365 \
            -subj /CN=localhost -addext 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1' \
            -keyout "$CACHE.key" -out "$CACHE.crt" >/dev/null 2>&1 ||
            die "openssl could not make a self-signed certificate"
        cat "$CACHE.crt" "$CACHE.key" >"$CACHE"
        rm -f "$CACHE.crt" "$CACHE.key"
    fi
    cp "$CACHE" "$DST/self-signed.pem"
    fp=$(openssl x509 -in "$CACHE" -noout -fingerprint -sha256 | sed 's/.*=//')
    log WARN "no certificate in $SRC (CHAT_TLS_DIR): serving a self-signed certificate for localhost (SHA-256 $fp), which no client trusts unless told to; mount a directory with your certificate as CHAT_TLS_DIR, or set CHAT_TLS_SELF_SIGNED=0 to refuse to start without one"
    describe "$DST/self-signed.pem" "the self-signed certificate"
}

if [ -n "${HAPROXY_TLS_BIND:-}" ]; then
    umask 077
    mkdir -p "$DST"
    find "$DST" -mindepth 1 -delete
    collect
    if [ -z "$(ls -A "$DST")" ]; then
        self_signed
    fi
fi

if [ "$(id -u)" = 0 ]; then
    if [ -n "${HAPROXY_TLS_BIND:-}" ]; then
        chown -R "$RUN_AS:$RUN_AS" "$(dirname "$DST")"
    fi
    exec setpriv --reuid="$RUN_AS" --regid="$RUN_AS" --init-groups --no-new-privs -- "$@"
fi
exec "$@"
