"""Run a container exactly as a chart renders it, on this machine: its command and args, its env (literal values;
secretKeyRef/configMapKeyRef resolved from the Secrets and ConfigMaps given), and its Secret and ConfigMap volumes
materialised with their items and modes at their exact mountPaths, in a private mount namespace (an overlay makes
a mountPath that does not exist on this machine, like /etc/toolkit/kafka, without touching the machine).

This is how the tests check the contract between a chart and the program it runs: nothing of the rendered spec is
rewritten. Needs root (mount namespaces); callers skip with `ROOT_REASON` otherwise.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT_REASON = "running a rendered container with its volumes at their mountPaths needs root (mount namespaces)"
IMAGE_BIN = Path(sys.executable).parent  # where the toolkit image's executables are, on this machine


def can_run() -> bool:
    return os.geteuid() == 0


def _materialise(volume: dict[str, Any], secrets: dict[str, dict[str, bytes]], root: Path) -> Path | None:
    folder = root / volume["name"]
    folder.mkdir(parents=True)
    source = volume.get("secret") or volume.get("configMap")
    if source is None:
        return folder if "emptyDir" in volume else None
    name = source.get("secretName") or source.get("name")
    data = secrets.get(name)
    if data is None:
        raise KeyError(f"volume {volume['name']} needs Secret/ConfigMap {name}, which the test does not provide")
    items = source.get("items") or [{"key": k, "path": k} for k in data]
    mode = source.get("defaultMode", 0o644)
    for item in items:
        if item["key"] not in data:
            raise KeyError(f"volume {volume['name']}: {name} has no key {item['key']}")
        target = folder / item["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data[item["key"]])
        target.chmod(item.get("mode", mode))
    return folder


def run_container(
    pod_spec: dict[str, Any],
    container: dict[str, Any],
    secrets: dict[str, dict[str, bytes]],
    extra_args: list[str] | None = None,
    timeout: float = 60,
    *,
    image_files: dict[str, bytes] | None = None,
    injected_env: dict[str, str] | None = None,
    volumes_dir: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `container` of `pod_spec` (see the module docstring); `extra_args` are appended (e.g. --check-config).
    `image_files` are files at absolute paths that the image (or an admission webhook) provides, `injected_env`
    variables a webhook adds; `volumes_dir` keeps the pod's volumes there after the run (to inspect an emptyDir
    an init container filled), instead of a scratch folder."""
    env = {"PATH": f"{IMAGE_BIN}:/usr/bin:/bin", "HOME": "/tmp", **(injected_env or {})}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
            continue
        ref = item["valueFrom"].get("secretKeyRef") or item["valueFrom"].get("configMapKeyRef")
        env[item["name"]] = secrets[ref["name"]][ref["key"]].decode()
    with tempfile.TemporaryDirectory(prefix="pod-") as tmp:
        root = Path(tmp)
        volumes_root = volumes_dir or root / "volumes"
        volumes = {v["name"]: _materialise(v, secrets, volumes_root) for v in pod_spec.get("volumes", [])}
        image_mounts: list[dict[str, Any]] = []
        by_folder: dict[str, dict[str, bytes]] = {}
        for path, content in (image_files or {}).items():
            by_folder.setdefault(str(Path(path).parent), {})[Path(path).name] = content
        for number, (folder, files) in enumerate(sorted(by_folder.items())):
            source = root / "image" / str(number)
            source.mkdir(parents=True)
            for name, content in files.items():
                (source / name).write_bytes(content)
            volumes[f"image-{number}"] = source
            image_mounts.append({"name": f"image-{number}", "mountPath": folder})
        script = ["set -e", f"mount -t tmpfs tmpfs {root}/overlays", f"cd {root}"]
        overlaid: set[str] = set()
        # a mount that would hide this runner's own files (an emptyDir at /tmp) goes last
        mounts = image_mounts + sorted(
            container.get("volumeMounts", []),
            key=lambda m: str(root).startswith(m["mountPath"].rstrip("/") + "/"),
        )
        for mount in mounts:
            source = volumes.get(mount["name"])
            if source is None:
                continue
            path = Path(mount["mountPath"])
            anchor = path
            while not anchor.exists():
                anchor = anchor.parent
            if anchor != path and str(anchor) not in overlaid:
                key = f"{root}/overlays/{len(overlaid)}"
                script += [
                    f"mkdir -p {key}/upper {key}/work",
                    f"mount -t overlay overlay -o lowerdir={anchor},upperdir={key}/upper,workdir={key}/work {anchor}",
                ]
                overlaid.add(str(anchor))
            script += [f"mkdir -p {shlex.quote(str(path))}", f"mount --bind {source} {shlex.quote(str(path))}"]
            if mount.get("readOnly"):
                script.append(f"mount -o remount,bind,ro {shlex.quote(str(path))}")
        argv = [*container.get("command", []), *container.get("args", []), *(extra_args or [])]
        argv[0] = str(IMAGE_BIN / argv[0]) if (IMAGE_BIN / argv[0]).exists() else argv[0]
        script.append("exec " + shlex.join(argv))
        (root / "overlays").mkdir()
        return subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", "\n".join(script)],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
