"""The walls of the house: the import-linter contracts in pyproject.toml, run over the real package, and proven able
to fail by planting violations in a copy of it (relative imports, lazy imports inside functions, worker -> engine,
targets -> cli: the cases a hand-written check missed before). Plus the one wall import-linter cannot state: the
engine never sleeps (time is injected), and `toolkit --help` loads no heavy library.

The contracts (see [tool.importlinter] in pyproject.toml):
- layers: cli > operations > rehearsal > provision > targets > engine | compliance > config | indices > catalog >
  errors > model (a lower layer never imports a higher one, directly or not);
- the worker is its own process: it imports nothing of the orchestrator and no orchestration client;
- decisions and plain data (model, engine, catalog, errors, config, indices) import no client library (nor the
  Prometheus client: the engine emits events, adapters count them);
- the CLI and the composition root import no client library directly (only through adapters);
- the simulated platform and the local test cluster are rooms apart (neither imports the other).
Beside them, the import graph has no cycle of run-time imports (grimp's graph).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
CLIENTS = (
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
    "matplotlib",
)


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """Run import-linter with the project's contracts over the `toolkit` package found in `root`."""
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )


def test_the_contracts_hold_on_the_package() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "BROKEN" not in result.stdout and "5 kept, 0 broken" in result.stdout


PLANTED = {
    # a relative import from the engine into an adapter (the old check skipped relative imports)
    "toolkit/engine/planted_relative.py": "from ..targets import kube\n",
    # a lazy import inside a function, from the model up into the engine
    "toolkit/model/planted_lazy.py": "def f():\n    from toolkit.engine import planner\n    return planner\n",
    # the worker reaching into the engine and the simulator
    "toolkit/worker/planted_engine.py": "from toolkit.engine import planner\nfrom toolkit.targets import sim\n",
    # an adapter importing the CLI
    "toolkit/targets/planted_cli.py": "from toolkit.cli import main\n",
    # a client library in the CLI
    "toolkit/cli/planted_client.py": "import kubernetes\n",
    # the engine emits events; metrics are written by adapters (toolkit.targets.run_metrics)
    "toolkit/engine/planted_metrics.py": "import prometheus_client\n",
    # the simulator reaching into the local test cluster
    "toolkit/targets/sim/planted_local.py": "from toolkit.targets.local import network\n",
}


def test_each_planted_violation_breaks_a_contract(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "toolkit", tmp_path / "toolkit", ignore=shutil.ignore_patterns("__pycache__"))
    for relative, text in PLANTED.items():
        (tmp_path / relative).write_text(text)
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    for needle in (
        "toolkit.engine.planted_relative -> toolkit.targets.kube",
        "toolkit.model.planted_lazy -> toolkit.engine.planner",
        "toolkit.worker.planted_engine -> toolkit.engine.planner",
        "toolkit.targets.planted_cli -> toolkit.cli.main",
        "toolkit.cli.planted_client -> kubernetes",
        "toolkit.engine.planted_metrics -> prometheus_client",
        "toolkit.targets.sim.planted_local -> toolkit.targets.local.network",
    ):
        assert needle in result.stdout, f"{needle} was not reported:\n{result.stdout[-3000:]}"


CYCLES = """
import sys
import grimp

graph = grimp.build_graph("toolkit", exclude_type_checking_imports=True, cache_dir=None)
edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in graph.modules if m.startswith("toolkit")}
index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]
sys.setrecursionlimit(10000)


def visit(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on.add(v)
    for w in edges[v]:
        if w not in edges:
            continue
        if w not in index:
            visit(w)
            low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        component = []
        while True:
            w = stack.pop()
            on.discard(w)
            component.append(w)
            if w == v:
                break
        if len(component) > 1:
            found.append(" <-> ".join(sorted(component)))


for module in sorted(edges):
    if module not in index:
        visit(module)
print("\\n".join(found))
"""


def import_cycles(root: Path) -> list[str]:
    """The strongly connected groups of modules in the import graph of the `toolkit` package found in `root`
    (grimp, the graph import-linter builds), imports made at run time (not those under TYPE_CHECKING: the simulated
    platform's parts name their World in annotations only)."""
    result = subprocess.run(
        [sys.executable, "-c", CYCLES],
        cwd=root,
        env={"PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        check=True,
    )
    return [line for line in result.stdout.splitlines() if line]


def test_the_import_graph_has_no_cycle(tmp_path: Path) -> None:
    assert import_cycles(ROOT) == []
    shutil.copytree(ROOT / "toolkit", tmp_path / "toolkit", ignore=shutil.ignore_patterns("__pycache__"))
    planted = tmp_path / "toolkit" / "engine"
    (planted / "planted_a.py").write_text("from toolkit.engine import planted_b\n")
    (planted / "planted_b.py").write_text("def f():\n    from toolkit.engine import planted_a\n    return planted_a\n")
    assert import_cycles(tmp_path) == ["toolkit.engine.planted_a <-> toolkit.engine.planted_b"]


def engine_sleeps(package: Path) -> list[str]:
    return [
        str(path.relative_to(package))
        for path in sorted((package / "engine").rglob("*.py"))
        if "time.sleep" in path.read_text() or "from time import sleep" in path.read_text()
    ]


def test_the_engine_never_sleeps_by_itself(tmp_path: Path) -> None:
    assert engine_sleeps(ROOT / "toolkit") == [], "all waiting goes through the target's clock"
    planted = tmp_path / "engine"
    planted.mkdir()
    (planted / "x.py").write_text("import time\ntime.sleep(1)\n")
    assert engine_sleeps(tmp_path) == ["engine/x.py"]


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
