"""Install size of each role: a fresh virtualenv per role, measured on disk, with its package count.

Roles, each installed exactly as a user (or the Dockerfile) installs it:
  toolkit           pip install toolkit                     the orchestrator (base dependencies)
  toolkit[aws]      pip install 'toolkit[aws]'              + regions on AWS (Pulumi, pulumi-aws, boto3)
  toolkit[report]   pip install 'toolkit[report]'           + the rehearsal's timeline picture (matplotlib)
  toolkit[local]    pip install 'toolkit[local]'            + local rehearsals (worker dependencies, noida-db)
  toolkit[dev]      pip install 'toolkit[dev]'              everything, plus tests and linters (`make test`)
  worker image      the [worker] pins + toolkit --no-deps   what the Dockerfile's worker image holds (the extra's
                                                            pins only: scripts/extra_requirements.py worker)

Size = what the role adds to an empty virtualenv's site-packages (pip itself excluded); packages = `pip list`
minus pip and setuptools. The toolkit wheel is built once from this checkout. Pip installs from its cache or the
configured indexes; nothing else is downloaded.

Run: .venv/bin/python benchmarks/install_sizes.py [--roles toolkit,worker] [--keep DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROLES = ("toolkit", "toolkit[aws]", "toolkit[report]", "toolkit[local]", "toolkit[dev]", "worker image")
SELF = ("pip", "setuptools")


def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]


def build_wheel(dest: Path) -> Path:
    """The toolkit's own wheel from this checkout (no dependencies)."""
    dest.mkdir(parents=True, exist_ok=True)
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(dest), str(REPO)])
    return next(dest.glob("toolkit-*.whl"))


def site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python3*/site-packages"))


def disk_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def create_role_venv(role: str, wheel: Path, venv: Path) -> Path:
    """A fresh virtualenv holding `role` and nothing else; returns its directory."""
    run([sys.executable, "-m", "venv", str(venv)])
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    if role == "worker image":
        pins = run([sys.executable, str(REPO / "scripts" / "extra_requirements.py"), "worker"]).stdout.split()
        run([*pip, *pins])
        run([*pip, "--no-deps", str(wheel)])
    else:
        extra = role[len("toolkit") :]  # "" or "[aws]"
        run([*pip, f"{wheel}{extra}"])
    return venv


def packages(venv: Path) -> list[str]:
    listed = run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze"]).stdout.split()
    return [line for line in listed if line.split("==")[0].lower() not in SELF]


def own_bytes(venv: Path) -> int:
    """Bytes in site-packages, minus pip and setuptools (there in every empty virtualenv)."""
    sp = site_packages(venv)
    total = disk_bytes(sp)
    for entry in sp.iterdir():
        if entry.name.lower().split("-")[0] in SELF:
            total -= disk_bytes(entry) if entry.is_dir() else entry.stat().st_size
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--roles", default=",".join(ROLES), help="comma-separated subset of: " + ", ".join(ROLES))
    parser.add_argument("--keep", type=Path, help="build the virtualenvs here and keep them")
    args = parser.parse_args()
    roles = [r.strip() for r in args.roles.split(",") if r.strip()]
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise SystemExit(f"unknown roles {sorted(unknown)}: use {', '.join(ROLES)}")
    with tempfile.TemporaryDirectory(prefix="toolkit-sizes-") as tmp:
        root = args.keep or Path(tmp)
        wheel = build_wheel(root / "wheel")
        print(f"{'role':18} {'packages':>8} {'on disk':>9} {'install':>8}")
        for role in roles:
            started = time.monotonic()
            venv = create_role_venv(role, wheel, root / role.replace("[", "-").replace("]", "").replace(" ", "-"))
            took = time.monotonic() - started
            size = own_bytes(venv) / 2**20
            print(f"{role:18} {len(packages(venv)):>8} {size:>7.0f} MiB {took:>6.0f} s", flush=True)


if __name__ == "__main__":
    main()
