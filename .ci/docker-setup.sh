#!/usr/bin/env bash
# Make a real Docker engine and the local Python base image available to CI
# and tests, from the repo's own files, idempotently.
#
#   bash .ci/docker-setup.sh          # engine + base image (warm run: ~0.1 s)
#   bash .ci/docker-setup.sh --check  # also: venv, offline wheel install in a
#                                     # `docker build`, and `--user 12345:0`
#
# 1. If `docker info` fails: install Debian's docker.io (and debootstrap) when
#    missing, start dockerd in the background (log: /tmp/dockerd.log), trying
#    storage drivers overlay2 -> fuse-overlayfs -> vfs, and wait for it (<=60 s).
# 2. Make sure image $MLPACK_TEST_BASE_IMAGE (default mlpack-base:bookworm-py311)
#    exists: Debian bookworm minbase + python3 (3.11, the host's minor version,
#    so cp311 wheels downloaded on the host install in it), python3-venv,
#    python3-pip, ca-certificates.  Built with debootstrap from the Debian
#    mirror the host's apt uses (the only one reachable here) and `docker
#    import`ed.  The root filesystem tarball is cached under /var/cache/mlpack,
#    so after an engine restart / wiped /var/lib/docker it is only re-imported.
#
# Environment (all optional):
#   MLPACK_TEST_BASE_IMAGE         image name (default mlpack-base:bookworm-py311)
#   MLPACK_DOCKER_STORAGE_DRIVER   force one storage driver (no fallback)
#   MLPACK_DEBIAN_MIRROR           override the mirror read from /etc/apt
#   MLPACK_CACHE_DIR               default /var/cache/mlpack
#   MLPACK_DOCKER_REBUILD=1        rebuild the base image and its cached tarball
set -euo pipefail

IMAGE="${MLPACK_TEST_BASE_IMAGE:-mlpack-base:bookworm-py311}"
CACHE_DIR="${MLPACK_CACHE_DIR:-/var/cache/mlpack}"
DOCKERD_LOG=/tmp/dockerd.log
WAIT_SECS=60
SUITE=bookworm
INCLUDES=python3,python3-venv,python3-pip,ca-certificates
# Bump when the way the rootfs is made or trimmed changes: it keys the cache
# and the image label, so a change causes a rebuild instead of a stale image.
RECIPE_VERSION=2
RECIPE_ID="$(printf '%s|%s|%s|%s' "$SUITE" minbase "$INCLUDES" "$RECIPE_VERSION" | sha256sum | cut -c1-12)"
RECIPE_LABEL=org.mlpack.base-recipe

CHECK=0
for arg in "$@"; do
    case "$arg" in
        --check) CHECK=1 ;;
        -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
        *) echo "docker-setup: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

T0=$(date +%s.%N)
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
log() { echo "docker-setup: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (installs packages, starts dockerd)"
mkdir -p "$CACHE_DIR"

# One setup at a time (parallel test jobs may call this concurrently).
exec 9>"$CACHE_DIR/docker-setup.lock"
flock -w 900 9 || die "another docker-setup.sh held $CACHE_DIR/docker-setup.lock for 15 min"

APT_UPDATED=0
ensure_pkgs() {  # ensure_pkgs CMD:PKG ...  installs PKG when CMD is missing
    local want=() spec
    for spec in "$@"; do
        command -v "${spec%%:*}" >/dev/null 2>&1 || want+=("${spec#*:}")
    done
    [ "${#want[@]}" -eq 0 ] && return 0
    local t; t=$(now)
    if [ "$APT_UPDATED" = 0 ]; then
        apt-get update -qq
        APT_UPDATED=1
    fi
    log "installing ${want[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${want[@]}" >/tmp/mlpack-docker-apt.log 2>&1 \
        || { tail -20 /tmp/mlpack-docker-apt.log >&2; die "apt-get install ${want[*]} failed"; }
    log "installed ${want[*]} in $(since "$t") s"
}

# ---------------------------------------------------------------- engine ----
STARTED_PID=""
DRIVER_FILE="$CACHE_DIR/docker-storage-driver"

engine_up() { docker info >/dev/null 2>&1; }

stop_our_dockerd() {
    [ -n "$STARTED_PID" ] || return 0
    kill "$STARTED_PID" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$STARTED_PID" 2>/dev/null || break; sleep 0.25; done
    STARTED_PID=""
}

# start_dockerd DRIVER: 0 when the engine answers within WAIT_SECS.
start_dockerd() {
    local driver="$1" t pid
    if [ "$driver" = fuse-overlayfs ]; then
        [ -e /dev/fuse ] || { log "no /dev/fuse: skipping fuse-overlayfs"; return 1; }
        ensure_pkgs fuse-overlayfs:fuse-overlayfs
    fi
    # A pid file left by a dockerd that died with the machine blocks a start.
    if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
        rm -f /var/run/docker.pid
    fi
    t=$(now)
    echo "=== $(date -u +%FT%TZ) dockerd --storage-driver=$driver" >>"$DOCKERD_LOG"
    # setsid + nohup: the engine outlives this script and the CI shell.
    # 9>&-: the engine must not inherit (and so hold forever) the setup lock.
    setsid nohup dockerd --storage-driver="$driver" >>"$DOCKERD_LOG" 2>&1 </dev/null 9>&- &
    pid=$!
    STARTED_PID=$pid
    for _ in $(seq 1 $((WAIT_SECS * 4))); do
        if engine_up; then
            STARTED_PID=$(cat /var/run/docker.pid 2>/dev/null || echo "$pid")
            log "dockerd (pid $STARTED_PID, storage driver $driver) up in $(since "$t") s"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            log "dockerd with storage driver $driver exited; last log lines:"
            tail -5 "$DOCKERD_LOG" | sed 's/^/    /' >&2
            STARTED_PID=""
            return 1
        fi
        sleep 0.25
    done
    log "dockerd with storage driver $driver did not answer within ${WAIT_SECS} s"
    stop_our_dockerd
    return 1
}

driver_candidates() {
    if [ -n "${MLPACK_DOCKER_STORAGE_DRIVER:-}" ]; then
        echo "$MLPACK_DOCKER_STORAGE_DRIVER"
        return
    fi
    # The driver that worked last time first, then the usual order.
    { [ -s "$DRIVER_FILE" ] && cat "$DRIVER_FILE"; printf '%s\n' overlay2 fuse-overlayfs vfs; } \
        | awk 'NF && !seen[$0]++'
}

# start_engine [SKIP_DRIVER]: start dockerd with the first driver that works.
start_engine() {
    local skip="${1:-}" driver
    for driver in $(driver_candidates); do
        [ "$driver" = "$skip" ] && continue
        if start_dockerd "$driver"; then
            # Remember what worked, unless it was forced.
            [ -n "${MLPACK_DOCKER_STORAGE_DRIVER:-}" ] || echo "$driver" >"$DRIVER_FILE"
            return 0
        fi
    done
    die "could not start dockerd with any storage driver; see $DOCKERD_LOG"
}

if engine_up; then
    log "engine already running ($(docker info --format '{{.ServerVersion}}, storage driver {{.Driver}}' 2>/dev/null))"
else
    ensure_pkgs dockerd:docker.io debootstrap:debootstrap
    start_engine
fi

# ------------------------------------------------------------ base image ----
debian_mirror() {
    if [ -n "${MLPACK_DEBIAN_MIRROR:-}" ]; then echo "$MLPACK_DEBIAN_MIRROR"; return; fi
    # The host's apt sources (one-line .list and deb822 .sources): the first
    # http(s) URI that serves suite $SUITE with component main.
    local m
    m=$(
        { cat /etc/apt/sources.list 2>/dev/null || true
          for f in /etc/apt/sources.list.d/*.list; do [ -f "$f" ] && cat "$f"; done; } |
        awk -v s="$SUITE" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                           if ($(i+1) == s && $0 ~ / main( |$)/) { print $i; exit } }'
    )
    if [ -z "$m" ]; then
        m=$(
            for f in /etc/apt/sources.list.d/*.sources; do [ -f "$f" ] && { cat "$f"; echo; }; done |
            awk -v s="$SUITE" '
                /^[[:space:]]*$/ { if (uri != "" && suite && main && enabled) { print uri; exit }
                                   uri = ""; suite = 0; main = 0; enabled = 1; next }
                BEGIN { enabled = 1 }
                /^URIs:/       { uri = $2 }
                /^Suites:/     { for (i = 2; i <= NF; i++) if ($i == s) suite = 1 }
                /^Components:/ { for (i = 2; i <= NF; i++) if ($i == "main") main = 1 }
                /^Enabled:[[:space:]]*no/ { enabled = 0 }'
        )
    fi
    echo "$m"
}

image_current() {
    [ "$(docker image inspect -f "{{index .Config.Labels \"$RECIPE_LABEL\"}}" "$IMAGE" 2>/dev/null)" = "$RECIPE_ID" ]
}

TARBALL="$CACHE_DIR/base/$SUITE-py311-$RECIPE_ID.rootfs.tar"
DEB_CACHE="$CACHE_DIR/base/debs"

build_rootfs_tarball() {
    ensure_pkgs debootstrap:debootstrap
    local mirror root t
    mirror=$(debian_mirror)
    [ -n "$mirror" ] || die "no Debian mirror serving '$SUITE main' found in /etc/apt/sources.list{,.d/*.list,.d/*.sources}; set MLPACK_DEBIAN_MIRROR to your mirror's URL"
    mkdir -p "$CACHE_DIR/base" "$DEB_CACHE"
    root=$(mktemp -d "$CACHE_DIR/base/rootfs.XXXXXX")
    # mktemp makes it 0700, and the tarball's "./" entry becomes the image's
    # "/": with vfs (not overlay2) a non-root --user then can't exec anything.
    chmod 0755 "$root"
    t=$(now)
    log "debootstrap $SUITE from $mirror (log: $CACHE_DIR/base/debootstrap.log)"
    if ! debootstrap --variant=minbase --include="$INCLUDES" --cache-dir="$DEB_CACHE" \
            "$SUITE" "$root" "$mirror" >"$CACHE_DIR/base/debootstrap.log" 2>&1; then
        tail -20 "$CACHE_DIR/base/debootstrap.log" >&2
        rm -rf "$root"
        die "debootstrap failed (mirror $mirror)"
    fi
    log "debootstrap done in $(since "$t") s"
    # Trim what an offline image never uses: apt caches and lists, docs, man
    # pages, locales (~140 MB of ~300 MB).  Keep the copyright files.
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin \
           "$root"/var/lib/apt/lists/* "$root"/usr/share/man/* "$root"/usr/share/locale/*
    find "$root/usr/share/doc" -type f ! -name copyright -delete
    # Docker bind-mounts its own; don't bake in the host's.
    : >"$root/etc/resolv.conf"
    echo localhost >"$root/etc/hostname"
    t=$(now)
    tar --numeric-owner -C "$root" -cf "$TARBALL.tmp" .
    mv "$TARBALL.tmp" "$TARBALL"
    rm -rf "$root"
    # Older recipes' tarballs are dead weight.
    find "$CACHE_DIR/base" -maxdepth 1 -name "$SUITE-py311-*.rootfs.tar" ! -path "$TARBALL" -delete
    log "cached rootfs tarball $TARBALL ($(du -h "$TARBALL" | cut -f1)) in $(since "$t") s"
}

import_image() {
    local t old; t=$(now)
    old=$(docker image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)
    docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'ENV PYTHONDONTWRITEBYTECODE=1' \
        --change "LABEL $RECIPE_LABEL=$RECIPE_ID" \
        --change 'CMD ["python3"]' \
        "$TARBALL" "$IMAGE" >/dev/null
    # An image from an older recipe is now untagged: drop it unless in use.
    [ -z "$old" ] || docker image rm "$old" >/dev/null 2>&1 || true
    log "imported $IMAGE in $(since "$t") s"
}

smoke_run() {
    docker run --rm --network none --user 12345:0 "$IMAGE" \
        python3 -c 'import sys, venv, ssl; assert sys.version_info[:2] == (3, 11), sys.version' \
        >/dev/null 2>&1
}

if [ "${MLPACK_DOCKER_REBUILD:-0}" = 1 ]; then
    rm -f "$TARBALL"
    docker image rm -f "$IMAGE" >/dev/null 2>&1 || true
fi

if image_current; then
    log "image $IMAGE present (recipe $RECIPE_ID)"
else
    [ -s "$TARBALL" ] || build_rootfs_tarball
    import_image
    if ! smoke_run; then
        # The storage driver started but cannot mount layers (seen in nested
        # sandboxes with overlay2).  Restart our own engine with the next
        # driver and re-import from the cached tarball.
        driver=$(docker info --format '{{.Driver}}')
        [ -n "$STARTED_PID" ] || die "cannot run a container from $IMAGE on the running engine (storage driver $driver); see $DOCKERD_LOG"
        log "cannot run a container with storage driver $driver: trying the next one"
        stop_our_dockerd
        rm -f "$DRIVER_FILE"
        start_engine "$driver"
        image_current || import_image
        smoke_run || die "cannot run a container from $IMAGE; see $DOCKERD_LOG"
    fi
fi

# ------------------------------------------------------------- --check ------
if [ "$CHECK" = 1 ]; then
    t=$(now)
    ctx=$(mktemp -d)
    tag="mlpack-docker-setup-check:$$"
    trap 'rm -rf "$ctx"; docker image rm -f "$tag" >/dev/null 2>&1 || true' EXIT
    mkdir -p "$ctx/wheels"
    # A pure-Python wheel made here, so the check needs no index at all.
    python3 - "$ctx/wheels" <<'EOF'
import base64, hashlib, sys, zipfile
name, ver = "mlpack_smoke", "0.0.1"
di = f"{name}-{ver}.dist-info"
files = {
    f"{name}.py": "VALUE = 42\n",
    f"{di}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {ver}\n",
    f"{di}/WHEEL": "Wheel-Version: 1.0\nGenerator: mlpack\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
def h(s):
    d = base64.urlsafe_b64encode(hashlib.sha256(s.encode()).digest()).rstrip(b"=").decode()
    return f"sha256={d},{len(s.encode())}"
record = "".join(f"{p},{h(c)}\n" for p, c in files.items()) + f"{di}/RECORD,,\n"
with zipfile.ZipFile(f"{sys.argv[1]}/{name}-{ver}-py3-none-any.whl", "w") as z:
    for p, c in {**files, f"{di}/RECORD": record}.items():
        z.writestr(p, c)
EOF
    cat >"$ctx/Dockerfile" <<EOF
FROM $IMAGE
COPY wheels /wheels
RUN python3 -m venv /opt/venv && /opt/venv/bin/pip --version \\
 && /opt/venv/bin/pip install --no-index --find-links /wheels mlpack_smoke
USER 12345:0
CMD ["/opt/venv/bin/python", "-c", "import mlpack_smoke, os; print(mlpack_smoke.VALUE, os.getuid(), os.getgid())"]
EOF
    # Legacy builder: what the docker Python SDK uses, and the one that works
    # with Debian's docker.io and no buildx plugin.
    DOCKER_BUILDKIT=0 docker build --network none -q -t "$tag" "$ctx" >/dev/null 2>"$ctx/build.err" \
        || { cat "$ctx/build.err" >&2; die "check: docker build failed"; }
    out=$(docker run --rm --network none --user 12345:0 "$tag" 2>&1) \
        || die "check: docker run --user 12345:0 failed: $out"
    [ "$out" = "42 12345 0" ] || die "check: unexpected output from the check image: $out"
    log "check passed (venv, offline wheel install in docker build, --user 12345:0) in $(since "$t") s"
fi

log "ready: $IMAGE on $(docker info --format 'Docker {{.ServerVersion}}, storage driver {{.Driver}}') ($(since "$T0") s)"
