"""Write the "## Parameters" section of each chart's README from its values.yaml (the bitnami `## @section` /
`## @param NAME DESCRIPTION` comments, defaults read from the YAML itself), so the tables never drift.

    python scripts/chart_readme.py          # rewrite the tables
    python scripts/chart_readme.py --check  # exit 1 when a README is out of date (the chart tests run this)
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

CHARTS = Path(__file__).resolve().parents[1] / "charts"
HEADING = "## Parameters"


def _default(values: dict[str, Any], dotted: str) -> str:
    node: Any = values
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return ""
        node = node[part]
    return f"`{json.dumps(node, separators=(', ', ': '))}`"


def parameters_section(chart: Path) -> str:
    text = (chart / "values.yaml").read_text()
    values = yaml.safe_load(text)
    lines = [HEADING, ""]
    for line in text.splitlines():
        section = re.match(r"^\s*## @section (.+)$", line)
        param = re.match(r"^\s*## @param (\S+) (.+)$", line)
        if section:
            lines += ["", f"### {section.group(1)}", "", "| Name | Description | Default |", "|---|---|---|"]
        elif param:
            name, description = param.groups()
            lines.append(f"| `{name}` | {description.replace('|', '&#124;')} | {_default(values, name)} |")
    return "\n".join(lines).replace("\n\n\n", "\n\n") + "\n"


def updated(readme: str, section: str) -> str:
    start = readme.index(HEADING)
    following = re.search(r"^## (?!#)", readme[start + len(HEADING) :], flags=re.M)
    end = start + len(HEADING) + following.start() if following else len(readme)
    return readme[:start] + section + ("\n" + readme[end:] if following else "")


def main(argv: list[str]) -> int:
    stale = []
    for chart in sorted(p for p in CHARTS.iterdir() if (p / "values.yaml").is_file()):
        readme = chart / "README.md"
        text = readme.read_text()
        new = updated(text, parameters_section(chart))
        if new != text:
            stale.append(str(readme))
            if "--check" not in argv:
                readme.write_text(new)
    if stale and "--check" in argv:
        print("out of date (run python scripts/chart_readme.py): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
