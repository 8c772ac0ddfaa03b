#!/usr/bin/env bash
# Install the host tools the `local` tier's pod runtime and TLS data plane use (toolkit/targets/local/network.py,
# runtime.py, dataplane.py): nftables (Service ClusterIPs, as kube-proxy would program them), stunnel4 (TLS in
# front of the single-node peer), iproute2 and util-linux (network namespaces, veth pairs, a bridge).
#
# Guarantees: idempotent (installs only what is missing); non-interactive; Debian's apt archive only; run as root.
# `make test` runs it; without it the node agent reports runnable pods as waiting, naming the missing tool.
set -euo pipefail

APT_PACKAGES=(nftables stunnel4 iproute2 util-linux)
export DEBIAN_FRONTEND=noninteractive

log() { printf '[local-data-plane] %s\n' "$*"; }

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
if ((${#missing[@]} == 0)); then
    log "present: ${APT_PACKAGES[*]}"
    exit 0
fi
if [[ "$(id -u)" != "0" ]]; then
    log "missing apt packages ${missing[*]}; must run as root to install them: sudo $0"
    exit 1
fi
log "installing apt packages: ${missing[*]}"
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
# Debian starts stunnel4 only when configured under /etc/stunnel; the toolkit runs its own stunnel processes.
log "installed: ${missing[*]}"
