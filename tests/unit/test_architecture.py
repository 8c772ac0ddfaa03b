"""The walls of the house, checked over the import graph of the source (no module is imported to check it).

- model imports nothing of the toolkit but itself;
- engine imports only model, catalog and itself, and no client library;
- only targets/, provision/ and the worker process import the Kubernetes, Kafka, Elasticsearch, AWS, Pulumi, Ansible
  or Helm libraries (compliance evaluates the Pulumi program under mocks, so it may import pulumi);
- CLI modules import nothing heavy at module level: everything heavy loads inside the command that needs it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "toolkit"
CLIENTS = {
    "kubernetes",
    "confluent_kafka",
    "elasticsearch",
    "elastic_transport",
    "boto3",
    "botocore",
    "pulumi",
    "pulumi_aws",
    "pulumi_kubernetes",
    "ansible",
    "helm_python",
}
ADAPTER_PACKAGES = ("toolkit.targets", "toolkit.provision", "toolkit.worker", "toolkit.compliance")


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path, top_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.If) and top_level_only:
            continue  # `if TYPE_CHECKING:` blocks do not run
    return found


def sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_model_imports_nothing_of_the_toolkit() -> None:
    for path in (PACKAGE / "model").rglob("*.py"):
        bad = {m for m in imports(path) if m.startswith("toolkit") and not m.startswith("toolkit.model")}
        assert not bad, f"{path}: the model must stay plain data, but imports {sorted(bad)}"


def engine_violations(package: Path) -> list[str]:
    """Every import in `package`/engine of something other than the model, the catalog and the engine itself, and
    every use of time.sleep there."""
    allowed = ("toolkit.model", "toolkit.catalog", "toolkit.engine")
    found_violations = []
    for path in sorted((package / "engine").rglob("*.py")):
        found = imports(path)
        bad = {m for m in found if m.startswith("toolkit") and not m.startswith(allowed)}
        clients = {m for m in found if m.split(".")[0] in CLIENTS}
        if bad or clients:
            found_violations.append(f"{path.name} imports {sorted(bad | clients)}")
        if "time" in found and "time.sleep" in path.read_text():
            found_violations.append(f"{path.name} calls time.sleep")
    return found_violations


def test_engine_never_imports_an_adapter_or_a_client_library() -> None:
    assert engine_violations(PACKAGE) == [], "the engine decides; time is injected"


def test_only_adapters_import_client_libraries() -> None:
    offenders = []
    for path in sources():
        name = module_name(path)
        if name.startswith(ADAPTER_PACKAGES):
            continue
        top = imports(path, top_level_only=True) if name.startswith("toolkit.cli") else imports(path)
        clients = {m for m in top if m.split(".")[0] in CLIENTS}
        if clients and not name.startswith("toolkit.cli"):
            offenders.append(f"{name}: {sorted(clients)}")
        elif clients:
            offenders.append(f"{name} (at module level): {sorted(clients)}")
    assert not offenders, "client libraries outside the adapters: " + "; ".join(offenders)


def test_the_check_sees_a_violation(tmp_path: Path) -> None:
    # the walls are only as good as the check: a planted engine that imports an adapter, a client library and
    # sleeps must be reported on all three counts
    engine = tmp_path / "engine"
    engine.mkdir()
    (engine / "clean.py").write_text("from toolkit.model import Verdict\nfrom toolkit.engine import paths\n")
    (engine / "dirty.py").write_text(
        "import time\nimport kubernetes\nfrom toolkit.targets.sim import SimTarget\n\ntime.sleep(1)\n"
    )
    assert engine_violations(tmp_path) == [
        "dirty.py imports ['kubernetes', 'toolkit.targets.sim']",
        "dirty.py calls time.sleep",
    ]


def test_help_loads_no_heavy_library() -> None:
    probe = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from toolkit.cli.main import app\n"
        "r = CliRunner().invoke(app, ['--help'])\n"
        "assert r.exit_code == 0, r.stdout\n"
        f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {sorted(CLIENTS)!r})\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "", f"`toolkit --help` imported: {out.stdout.strip()}"
