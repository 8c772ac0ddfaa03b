#!/usr/bin/env bash
# Build the binaries of the `local` target: a real Kubernetes v1.20.2 control plane on this machine.
#
# What it does, in order (each step is skipped when its result already exists):
#   1. If kube-apiserver, kube-controller-manager and kube-scheduler are already in the cache
#      (${TOOLKIT_CACHE:-$HOME/.cache/toolkit}/kube-1.20.2/bin) and etcd is installed: print where and exit.
#   2. apt-get install whatever is missing of: etcd-server golang-go rsync dpkg-dev.
#   3. Fetch Debian bookworm's SOURCE package `kubernetes` (1.20.5+really1.20.2, full tree with vendor/) through a
#      PRIVATE apt configuration (its own sources list with a deb-src line, its own lists and cache dirs), so the
#      machine's sources.list and apt state are never touched.
#   4. dpkg-source -x; make the GOPATH symlink debian/rules makes (.go/src/k8s.io/kubernetes -> tree);
#      GOPROXY=off make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler" (~7 min, 2 cores).
#   5. Copy the three binaries into the cache (outside any project checkout) and print how long the build took.
#
# Guarantees: idempotent; non-interactive; needs only Debian's apt archive (no other download); run as root.
# The build tree is removed after a successful build unless TOOLKIT_KEEP_BUILD=1.
set -euo pipefail

KUBE_VERSION="1.20.2"
CACHE_ROOT="${TOOLKIT_CACHE:-$HOME/.cache/toolkit}/kube-${KUBE_VERSION}"
BIN_DIR="${CACHE_ROOT}/bin"
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler)
APT_PACKAGES=(etcd-server golang-go rsync dpkg-dev)
# The Debian archive this machine already uses (its own apt configuration), unless TOOLKIT_DEBIAN_MIRROR says
# otherwise: the first URI that serves the bookworm main suite, from deb822 .sources files or one-line .list files.
machine_debian_archive() {
    local file
    for file in /etc/apt/sources.list.d/*.sources; do
        [[ -f "$file" ]] || continue
        awk 'BEGIN { RS = ""; FS = "\n" }
             /(^|\n)Suites:[^\n]*bookworm([ \n]|$)/ && /(^|\n)Components:[^\n]*main/ {
                 for (i = 1; i <= NF; i++) if ($i ~ /^URIs:/) { split($i, f, " "); print f[2]; exit }
             }' "$file"
    done
    for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f "$file" ]] || continue
        awk '$1 == "deb" && $3 == "bookworm" && / main/ { print $2; exit }' "$file"
    done
}
DEBIAN_MIRROR="${TOOLKIT_DEBIAN_MIRROR:-$(machine_debian_archive | head -n 1)}"
export DEBIAN_FRONTEND=noninteractive

log() { printf '[local-control-plane] %s\n' "$*"; }

all_binaries_cached() {
    local name
    for name in "${BINARIES[@]}"; do
        [[ -x "${BIN_DIR}/${name}" ]] || return 1
    done
    command -v etcd >/dev/null 2>&1 || [[ -x /usr/bin/etcd ]]
}

if all_binaries_cached; then
    log "binaries present in ${BIN_DIR} and etcd installed: nothing to do"
    exit 0
fi

if [[ -z "${DEBIAN_MIRROR}" ]]; then
    log "no Debian bookworm archive found in this machine's apt configuration (/etc/apt/sources.list*):"
    log "set TOOLKIT_DEBIAN_MIRROR to the archive URI this machine installs Debian packages from"
    exit 1
fi

if [[ "$(id -u)" != "0" ]]; then
    log "must run as root (it installs apt packages): sudo $0"
    exit 1
fi

# --- 2. apt packages --------------------------------------------------------------------------------------
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
if ((${#missing[@]})); then
    log "installing apt packages: ${missing[*]}"
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# --- 3. source package through a private apt configuration -------------------------------------------------
WORK_DIR="${CACHE_ROOT}/build"
APT_DIR="${CACHE_ROOT}/apt"
mkdir -p "$WORK_DIR" "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial"
cat >"$APT_DIR/sources.list" <<EOF
deb-src ${DEBIAN_MIRROR} bookworm main
EOF
APT_OPTS=(
    -o "Dir::Etc::SourceList=${APT_DIR}/sources.list"
    -o "Dir::Etc::SourceParts=${APT_DIR}/no-parts.d"
    -o "Dir::State::Lists=${APT_DIR}/lists"
    -o "Dir::Cache=${APT_DIR}/cache"
    -o "APT::Sandbox::User=root"
)
mkdir -p "${APT_DIR}/no-parts.d"

TREE="$(find "$WORK_DIR" -maxdepth 1 -mindepth 1 -type d -name 'kubernetes-*' | head -n 1)"
if [[ -z "$TREE" ]]; then
    if ! ls "$WORK_DIR"/kubernetes_*.dsc >/dev/null 2>&1; then
        log "fetching the kubernetes source package (deb-src ${DEBIAN_MIRROR} bookworm main)"
        apt-get "${APT_OPTS[@]}" update -q
        (cd "$WORK_DIR" && apt-get "${APT_OPTS[@]}" source --download-only kubernetes)
    fi
    DSC="$(ls "$WORK_DIR"/kubernetes_*.dsc | head -n 1)"
    log "unpacking ${DSC##*/}"
    (cd "$WORK_DIR" && dpkg-source --no-check -x "$DSC")
    TREE="$(find "$WORK_DIR" -maxdepth 1 -mindepth 1 -type d -name 'kubernetes-*' | head -n 1)"
fi
log "source tree: $TREE"

# --- 4. build ---------------------------------------------------------------------------------------------
# The GOPATH layout debian/rules sets up: the tree must be reachable as $GOPATH/src/k8s.io/kubernetes.
GOPATH_DIR="${TREE}/.go"
mkdir -p "${GOPATH_DIR}/src/k8s.io"
[[ -L "${GOPATH_DIR}/src/k8s.io/kubernetes" ]] || ln -s ../../.. "${GOPATH_DIR}/src/k8s.io/kubernetes"

build_started=$(date +%s)
log "building ${BINARIES[*]} (about 7 minutes on 2 cores)"
(
    cd "${GOPATH_DIR}/src/k8s.io/kubernetes"
    export GOPATH="$GOPATH_DIR" GOPROXY=off
    export GOCACHE="${CACHE_ROOT}/go-build-cache"
    # No KUBE_GIT_* needed: the orig tarball is a `git archive` with the v1.20.2 version stamped in.
    make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler"
)
build_seconds=$(($(date +%s) - build_started))

# --- 5. cache the binaries -------------------------------------------------------------------------------
mkdir -p "$BIN_DIR"
for name in "${BINARIES[@]}"; do
    built="$(find "${TREE}/_output" -type f -name "$name" -perm -u+x | head -n 1)"
    if [[ -z "$built" ]]; then
        log "build finished but ${name} was not found under ${TREE}/_output"
        exit 1
    fi
    install -m 0755 "$built" "${BIN_DIR}/${name}.tmp"
    mv -f "${BIN_DIR}/${name}.tmp" "${BIN_DIR}/${name}"
done
"${BIN_DIR}/kube-apiserver" --version
if [[ "${TOOLKIT_KEEP_BUILD:-0}" != "1" ]]; then
    rm -rf "$WORK_DIR" "$APT_DIR" "${CACHE_ROOT}/go-build-cache"
fi
log "build took ${build_seconds} s; binaries in ${BIN_DIR}"
