#!/usr/bin/env bash
# Install the host tools the chart-monitoring tests use, from Debian's apt archive:
#   prometheus                          for `promtool check rules` / `promtool test rules` over the PrometheusRules the
#                                       charts ship (tests/charts/test_monitoring.py)
#   prometheus-elasticsearch-exporter   the standard Elasticsearch exporter, scraped against the single-node peer so
#                                       the Elasticsearch alerts are checked against the names it really exports
#
# Guarantees: idempotent (installs only what is missing); non-interactive; Debian's apt archive only; run as root.
# Neither package's service is started (a policy-rc.d denies it for the duration of the install): the tests run the
# binaries themselves. `make test` runs it.
set -euo pipefail

APT_PACKAGES=(prometheus prometheus-elasticsearch-exporter)
export DEBIAN_FRONTEND=noninteractive

log() { printf '[test-tools] %s\n' "$*"; }

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
if ((${#missing[@]} == 0)); then
    log "present: ${APT_PACKAGES[*]} ($(promtool --version 2>&1 | head -n 1))"
    exit 0
fi
if [[ "$(id -u)" != "0" ]]; then
    log "missing apt packages ${missing[*]}; must run as root to install them: sudo $0"
    exit 1
fi

# Debian starts a package's service on install; these are tools for the tests, not services for this machine.
POLICY=/usr/sbin/policy-rc.d
own_policy=0
if [[ ! -e "$POLICY" ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$POLICY"
    chmod 0755 "$POLICY"
    own_policy=1
fi
cleanup() { if ((own_policy)); then rm -f "$POLICY"; fi; }
trap cleanup EXIT

log "installing apt packages: ${missing[*]}"
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
log "installed: ${missing[*]} ($(promtool --version 2>&1 | head -n 1))"
