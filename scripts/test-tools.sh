#!/usr/bin/env bash
# Install the host tools the chart-monitoring tests use, from Debian's apt archive:
#   prometheus                          for `promtool check rules` / `promtool test rules` over the PrometheusRules the
#                                       charts ship (tests/charts/test_monitoring.py)
#   prometheus-elasticsearch-exporter   the standard Elasticsearch exporter, scraped against the single-node peer so
#                                       the Elasticsearch alerts are checked against the names it really exports
#
#   checkov (PyPI, pinned in pyproject.toml's `scan` extra) in its own virtualenv .venv-scan, for the scan of the
#                                       manifests `toolkit deploy --render` writes (tests/charts/test_checkov.py)
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
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SCAN_VENV="$ROOT/.venv-scan"
scan_pins=$(python3 "$ROOT/scripts/extra_requirements.py" scan)
if [[ ! -x "$SCAN_VENV/bin/checkov" ]] || [[ "$(cat "$SCAN_VENV/.pins" 2>/dev/null)" != "$scan_pins" ]]; then
    log "installing into $SCAN_VENV: $scan_pins"
    python3 -m venv "$SCAN_VENV"
    "$SCAN_VENV/bin/pip" install -q --disable-pip-version-check $scan_pins
    printf '%s' "$scan_pins" >"$SCAN_VENV/.pins"
fi
log "present: $("$SCAN_VENV/bin/checkov" --version 2>/dev/null | head -n 1 | sed 's/^/checkov /')"

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
