"""Start a container's process, or run a command inside a running one, for one pod sandbox.

`RunnableImages` maps image repositories (optionally `repository:tag`, looked up first) to host directories: the
"image" of a runnable container is that directory. Nothing is added to or rewritten in the container's command:
- argv = command + args with `$(VAR)` expanded (podspec.container_argv); the first element, when it names a file
  of the image directory, is that file; otherwise it is looked up on the container's PATH;
- env = PATH (the image directory first, then the usual system directories), HOSTNAME and HOME (from the user's
  passwd entry, "/" when it has none) as a container runtime sets them, overridden by the kubelet's env
  (podspec.container_env): the agent's own environment never leaks in;
- files = the pod's volumes at their exact mountPath (volumes.mounts) plus the pod's hosts, resolv.conf and
  hostname under /etc (unless a volumeMount claims those paths);
- identity = podspec.run_as (runAsUser/runAsGroup, groups with fsGroup, readOnlyRootFilesystem, no_new_privs);
- a volume mounted over (an ancestor of) the image's own files is refused (CreateContainerError): it would hide them;
- the image's own paths (its directory, the executable's symlink chain, the interpreter a script names and that
  interpreter's chain) must be reachable by that user: their ancestors that others cannot traverse (e.g. /root at
  mode 0700 holding a Python installation) are made traversable inside the pod's mount namespace only.
The spec goes to sandbox.py on stdin; its status pipe tells a start failure (StartFailure with the kubelet's reason)
from a started process. stdout and stderr go to `<logs>/<container>/<restartCount>.log`, as a kubelet lays out
/var/log/pods.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.targets.local import podspec, volumes
from toolkit.targets.local.container import StartFailure
from toolkit.targets.local.network import netns_path

JsonDict = dict[str, Any]
SANDBOX = Path(__file__).with_name("sandbox.py")
ETC_FILES = ("hosts", "resolv.conf", "hostname")


class RunnableImages:
    """Image repository (or repository:tag) -> directory of its executables; changeable while the agent runs."""

    def __init__(self, mapping: Mapping[str, Path] | None = None) -> None:
        self._mapping = {key: Path(value) for key, value in (mapping or {}).items()}

    def set(self, image: str, directory: Path) -> None:
        self._mapping[image] = Path(directory)

    def remove(self, image: str) -> None:
        self._mapping.pop(image, None)

    def names(self) -> list[str]:
        return sorted(self._mapping)

    def directory(self, image: str) -> Path | None:
        repository, tag = podspec.image_repository(image)
        return self._mapping.get(f"{repository}:{tag}") or self._mapping.get(repository)

    def runs_all(self, pod: Mapping[str, Any]) -> bool:
        """True when every container of the pod, init containers included, has a runnable image."""
        spec = pod.get("spec") or {}
        containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
        return bool(containers) and all(self.directory(str(c.get("image", ""))) is not None for c in containers)


def _symlink_chain(path: Path) -> list[Path]:
    chain = [path]
    seen = 0
    while chain[-1].is_symlink() and seen < 40:
        target = Path(os.readlink(chain[-1]))
        chain.append(target if target.is_absolute() else chain[-1].parent / target)
        seen += 1
    return chain


def _interpreter(path: Path) -> Path | None:
    try:
        with open(path, "rb") as handle:
            head = handle.read(256)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    words = head[2:].split(b"\n", 1)[0].split()
    return Path(words[0].decode()) if words and words[0].startswith(b"/") else None


def untraversable_dirs(image_dir: Path, executable: Path | None) -> list[str]:
    """Ancestors of the image's own paths that others cannot traverse (see the module docstring)."""
    paths = _symlink_chain(image_dir)
    if executable is not None:
        for hop in _symlink_chain(executable):
            paths.append(hop)
            interpreter = _interpreter(hop)
            if interpreter is not None:
                paths += _symlink_chain(interpreter)
    found: set[str] = set()
    for path in paths:
        for ancestor in [*reversed(path.parents), path]:
            try:
                info = ancestor.lstat()
            except OSError:
                break
            if stat.S_ISDIR(info.st_mode) and not info.st_mode & 0o001:
                found.add(str(ancestor))
    return sorted(found)


def _refuse_hidden_image(container: JsonDict, mounts: list[volumes.Mount], paths: list[Path]) -> None:
    """A volume mounted over a directory that holds the image itself would hide the image (it lives on the host)."""
    for mount in mounts:
        target = Path(mount.target)
        for path in paths:
            for hop in _symlink_chain(path):
                if hop == target or target in hop.parents:
                    raise podspec.ConfigError(
                        f"container {container['name']}: volumeMount at {mount.target} would hide {hop}, part of the "
                        f"runnable image {container.get('image')} (its files live on this host); mount the volume "
                        "elsewhere or map the image to a directory outside that path",
                        "CreateContainerError",
                    )


@dataclass
class PodFiles:
    """Where one pod's files live on the host."""

    directory: Path  # <state>/pods/<ns>_<name>_<uid>
    logs: Path  # <state>/logs/pods/<ns>_<name>_<uid>

    @property
    def etc(self) -> Path:
        return self.directory / "etc"

    @property
    def volumes(self) -> Path:
        return self.directory / "volumes"

    @property
    def scratch(self) -> Path:
        return self.directory / "scratch"

    def log(self, container: str, restart_count: int) -> Path:
        return self.logs / container / f"{restart_count}.log"


class ContainerLauncher:
    """container.Launcher for one pod (see the module docstring)."""

    def __init__(
        self,
        pod: Callable[[], JsonDict],
        images: RunnableImages,
        files: PodFiles,
        netns: str,
        env_for: Callable[[JsonDict], dict[str, str]],
        pod_volumes: Callable[[], Mapping[str, volumes.Volume]],
    ) -> None:
        self._pod = pod
        self._images = images
        self._files = files
        self._netns = netns
        self._env_for = env_for
        self._volumes = pod_volumes
        self._last_env: dict[str, dict[str, str]] = {}

    def hostname(self) -> str:
        pod = self._pod()
        return str(pod["spec"].get("hostname") or pod["metadata"]["name"])[:63]

    def _image_dir(self, container: JsonDict) -> Path:
        image = str(container.get("image", ""))
        directory = self._images.directory(image)
        if directory is None:
            raise StartFailure(
                "ErrImageNeverPull",
                f'image "{image}" is not one the local node agent runs as host processes (it runs: '
                f"{', '.join(self._images.names()) or 'none'}); map its repository to a directory (--run-image)",
            )
        return directory

    def _spec(self, container: JsonDict) -> tuple[JsonDict, str]:
        image_dir = self._image_dir(container)
        env = self._env_for(container)
        argv = podspec.container_argv(container, env)
        if not argv:
            raise podspec.ConfigError(
                f"container {container['name']}: the runnable image {container.get('image')} (host directory "
                f"{image_dir}) has no entrypoint; set the container's command",
                "CreateContainerError",
            )
        executable: Path | None = None
        if "/" not in argv[0] and (image_dir / argv[0]).exists():
            executable = image_dir / argv[0]
            argv[0] = str(executable)
        elif argv[0].startswith("/"):
            executable = Path(argv[0])
        identity = podspec.run_as(self._pod(), container)
        full_env = {"PATH": f"{image_dir}:{podspec.DEFAULT_PATH}", "HOSTNAME": self.hostname(), "HOME": identity.home}
        full_env.update(env)
        self._last_env[container["name"]] = full_env
        mounts = volumes.mounts(container, self._volumes())
        _refuse_hidden_image(container, mounts, [image_dir, *([executable] if executable else [])])
        claimed = {m.target for m in mounts}
        for name in ETC_FILES:
            if f"/etc/{name}" not in claimed:
                mounts.append(volumes.Mount(self._files.etc / name, f"/etc/{name}", False, True))
        spec = {
            "mode": "run",
            "netns": str(netns_path(self._netns)),
            "hostname": self.hostname(),
            "scratch": str(self._files.scratch),
            "traversable": untraversable_dirs(image_dir, executable),
            "mounts": [
                {"source": str(m.source), "target": m.target, "read_only": m.read_only, "is_file": m.is_file}
                for m in mounts
            ],
            "read_only_root": identity.read_only_root,
            "uid": identity.uid,
            "gid": identity.gid,
            "groups": list(identity.groups),
            "no_new_privs": identity.no_new_privs,
            "cwd": container.get("workingDir") or "/",
            "env": full_env,
            "argv": argv,
        }
        return spec, str(container["name"])

    def _spawn(self, spec: JsonDict, stdout: Any, new_session: bool) -> tuple[subprocess.Popen[bytes], str]:
        read_end, write_end = os.pipe()
        try:
            process = subprocess.Popen(
                [sys.executable, "-I", "-S", str(SANDBOX)],
                stdin=subprocess.PIPE, stdout=stdout, stderr=subprocess.STDOUT,
                pass_fds=(write_end,), start_new_session=new_session,
            )  # fmt: skip
        finally:
            os.close(write_end)
        try:
            assert process.stdin is not None
            process.stdin.write(json.dumps({**spec, "status_fd": write_end}).encode())
            process.stdin.close()
            failure = b""
            while chunk := os.read(read_end, 4096):
                failure += chunk
        finally:
            os.close(read_end)
        return process, failure.decode("utf-8", "replace").strip()

    def start(self, container: JsonDict, restart_count: int) -> subprocess.Popen[bytes]:
        spec, name = self._spec(container)
        log = self._files.log(name, restart_count)
        log.parent.mkdir(parents=True, exist_ok=True)
        self._files.scratch.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            process, failure = self._spawn(spec, out, new_session=True)
        if failure:
            process.wait()
            reason, _, message = failure.partition("\t")
            raise StartFailure(reason or "StartError", message or failure)
        return process

    def exec_in(self, container: JsonDict, pid: int, argv: list[str], timeout: float) -> int:
        """Run `argv` inside the running container `pid` (its namespaces, user, env); its exit code."""
        identity = podspec.run_as(self._pod(), container)
        spec = {
            "mode": "join",
            "pid": pid,
            "uid": identity.uid,
            "gid": identity.gid,
            "groups": list(identity.groups),
            "no_new_privs": identity.no_new_privs,
            "cwd": container.get("workingDir") or "/",
            "env": self._last_env.get(container["name"], {"PATH": podspec.DEFAULT_PATH}),
            "argv": argv,
        }
        process, failure = self._spawn(spec, subprocess.DEVNULL, new_session=True)
        if failure:
            process.wait()
            return 126
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise TimeoutError(f"exec {argv} in container {container['name']}") from None
