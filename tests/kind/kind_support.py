"""Whether the kind tier can run here: the toolkit's own check of kind and Docker, plus the opt-in TOOLKIT_KIND=1
(these tests create, or reuse, the cluster kind-toolkit)."""

from __future__ import annotations

import os

from toolkit.targets.clusters import missing_kind_parts


def kind_missing() -> str | None:
    """None when the kind tests may run; else the skip reason, naming the missing part."""
    missing = missing_kind_parts()
    if missing:
        return "; ".join(missing)
    if os.environ.get("TOOLKIT_KIND") != "1":
        return "kind and docker are present, but TOOLKIT_KIND=1 is not set (it creates/uses cluster kind-toolkit)"
    return None
