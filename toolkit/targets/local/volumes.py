"""A pod's volumes made real under the agent's state directory, as the kubelet makes them.

Layout (`materialise(pod, root, sources, ...)`, one directory per volume under `root`):
- secret, configMap, downwardAPI, projected: the kubelet's atomic-writer layout: the files in `..<timestamp>/`,
  a `..data` symlink to it, and one symlink per top-level entry (`tls.crt -> ..data/tls.crt`). Every key, or only
  `items` (key -> path, with per-item `mode`), file modes = item mode or `defaultMode` (default 0644). A missing
  object or key fails the mount with the kubelet's message unless `optional`. These volumes are always mounted
  read-only in the container (Kubernetes does so since 1.10).
- emptyDir: an empty directory, mode 0777 (`medium: Memory` and `sizeLimit` are not modelled).
- hostPath: the host path itself (`DirectoryOrCreate` / `FileOrCreate` create it).
- anything else (persistentVolumeClaim, csi, ...): `ConfigError` naming the volume and its type.
fsGroup (pod securityContext) is applied as the kubelet's SetVolumeOwnership does: every file and directory gets
group fsGroup (symlinks untouched), files `| 0440` on read-only volume types and `| 0660` on writable ones,
directories also setgid and `| 0110`. So `defaultMode: 0440` + `fsGroup: G` yields `root:G 0440`, readable by a
process whose groups include G and by nobody else, exactly as on a real node.

`mounts(container, volumes)`: the container's volumeMounts as (source, mountPath, read-only, file?) with subPath
resolved; an unknown volume name is a `ConfigError`.
"""

from __future__ import annotations

import datetime
import os
import shutil
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from toolkit.targets.local.podspec import ConfigError, field_value, fs_group, resource_value

READ_ONLY_TYPES = ("secret", "configMap", "downwardAPI", "projected")
DEFAULT_MODE = 0o644
RW_MASK, RO_MASK, EXEC_MASK = 0o660, 0o440, 0o110


@dataclass(frozen=True)
class VolumeSources:
    """Where volume data comes from (None: the object does not exist)."""

    secret: Callable[[str], Mapping[str, bytes] | None]
    config_map: Callable[[str], Mapping[str, bytes] | None]  # data and binaryData, as bytes
    token: Callable[[str, str, int], str]  # (service account, audience, expirationSeconds) -> a bound token


@dataclass(frozen=True)
class Volume:
    name: str
    path: Path
    read_only: bool  # the volume type is always mounted read-only


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str
    read_only: bool
    is_file: bool


def _fail(volume: str, message: str) -> ConfigError:
    return ConfigError(f'MountVolume.SetUp failed for volume "{volume}" : {message}', "CreateContainerConfigError")


def _safe_relative(volume: str, path: str) -> str:
    parts = PurePosixPath(path).parts
    if not parts or path.startswith("/") or ".." in parts or any(p.startswith("..") for p in parts):
        raise _fail(volume, f"invalid path {path!r} (relative, without '..')")
    return str(PurePosixPath(*parts))


def _selected(
    volume: str, kind: str, data: Mapping[str, bytes], items: list[Mapping[str, Any]] | None, optional: bool,
    default_mode: int,
) -> dict[str, tuple[bytes, int]]:  # fmt: skip
    if not items:
        return {key: (value, default_mode) for key, value in data.items()}
    chosen = {}
    for item in items:
        if item["key"] not in data:
            if optional:
                continue
            raise _fail(volume, f"{kind} references non-existent {kind} key: {item['key']}")
        mode = item.get("mode")
        chosen[_safe_relative(volume, item["path"])] = (data[item["key"]], default_mode if mode is None else mode)
    return chosen


def _downward_files(
    volume: str, items: list[Mapping[str, Any]], default_mode: int, pod: Mapping[str, Any], pod_ip: str, host_ip: str,
    allocatable: Mapping[str, str],
) -> dict[str, tuple[bytes, int]]:  # fmt: skip
    files = {}
    containers = {c["name"]: c for c in (pod.get("spec") or {}).get("containers") or []}
    for item in items:
        if item.get("fieldRef"):
            value = field_value(pod, item["fieldRef"]["fieldPath"], pod_ip, host_ip, whole_maps=True)
        elif item.get("resourceFieldRef"):
            ref = item["resourceFieldRef"]
            container = containers.get(ref.get("containerName", ""))
            if container is None:
                raise _fail(volume, f"resourceFieldRef names no container of the pod: {ref.get('containerName')!r}")
            value = resource_value(ref, container, allocatable)
        else:
            raise _fail(volume, f"downwardAPI item {item.get('path')!r} has neither fieldRef nor resourceFieldRef")
        mode = item.get("mode")
        files[_safe_relative(volume, item["path"])] = (value.encode(), default_mode if mode is None else mode)
    return files


def _write_atomic(directory: Path, files: Mapping[str, tuple[bytes, int]]) -> None:
    """The atomic writer's layout: ..<timestamp>/ with the files, ..data -> it, top-level symlinks."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o1777)
    stamp = datetime.datetime.now(datetime.UTC).strftime("..%Y_%m_%d_%H_%M_%S.%f")
    payload = directory / stamp
    payload.mkdir(mode=0o755)
    for relative, (data, mode) in sorted(files.items()):
        target = payload / relative
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        target.write_bytes(data)
        target.chmod(mode & 0o7777)
    link = directory / "..data_tmp"
    link.unlink(missing_ok=True)
    link.symlink_to(stamp)
    link.replace(directory / "..data")
    for top in sorted({PurePosixPath(r).parts[0] for r in files}):
        entry = directory / top
        if not entry.is_symlink():
            entry.symlink_to(f"..data/{top}")


def _apply_fs_group(directory: Path, group: int, read_only: bool) -> None:
    mask = RO_MASK if read_only else RW_MASK
    for current, dirs, names in os.walk(directory):
        linked_dirs = [d for d in dirs if (Path(current) / d).is_symlink()]  # real ones come as `current` later
        for name in [None, *linked_dirs, *names]:
            path = Path(current) if name is None else Path(current) / name
            info = path.lstat()
            os.lchown(path, -1, group)
            if stat.S_ISLNK(info.st_mode):
                continue
            extra = mask | (stat.S_ISGID | EXEC_MASK if stat.S_ISDIR(info.st_mode) else 0)
            path.chmod(stat.S_IMODE(info.st_mode) | extra)


def materialise(
    pod: Mapping[str, Any],
    root: Path,
    sources: VolumeSources,
    pod_ip: str,
    host_ip: str,
    allocatable: Mapping[str, str],
) -> dict[str, Volume]:
    """Write every volume of `pod` under `root` (replacing what was there); raises ConfigError."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True, mode=0o755)
    group = fs_group(pod)
    volumes: dict[str, Volume] = {}
    for spec in (pod.get("spec") or {}).get("volumes") or []:
        name = spec["name"]
        kind = next((k for k in spec if k != "name"), "")
        path = root / name
        if kind in READ_ONLY_TYPES:
            files = _volume_files(name, kind, spec[kind], pod, sources, pod_ip, host_ip, allocatable)
            _write_atomic(path, files)
        elif kind == "emptyDir":
            path.mkdir(mode=0o777)
            path.chmod(0o777)
        elif kind == "hostPath":
            volumes[name] = Volume(name, _host_path(name, spec[kind]), False)
            continue
        else:
            raise _fail(
                name,
                f"volume type {kind!r} is not supported by the local node agent (it runs secret, configMap, "
                "downwardAPI, projected, emptyDir and hostPath volumes); use one of those for a runnable pod",
            )
        read_only = kind in READ_ONLY_TYPES
        if group is not None:
            _apply_fs_group(path, group, read_only)
        volumes[name] = Volume(name, path, read_only)
    return volumes


def _volume_files(
    name: str, kind: str, spec: Mapping[str, Any], pod: Mapping[str, Any], sources: VolumeSources, pod_ip: str,
    host_ip: str, allocatable: Mapping[str, str],
) -> dict[str, tuple[bytes, int]]:  # fmt: skip
    default_mode = spec.get("defaultMode")
    default_mode = DEFAULT_MODE if default_mode is None else int(default_mode)
    if kind == "secret":
        return _secret_files(name, spec, sources, default_mode)
    if kind == "configMap":
        return _config_map_files(name, spec, sources, default_mode)
    if kind == "downwardAPI":
        return _downward_files(name, spec.get("items") or [], default_mode, pod, pod_ip, host_ip, allocatable)
    files: dict[str, tuple[bytes, int]] = {}
    for source in spec.get("sources") or []:  # projected
        if source.get("secret"):
            files.update(_secret_files(name, source["secret"], sources, default_mode))
        elif source.get("configMap"):
            files.update(_config_map_files(name, source["configMap"], sources, default_mode))
        elif source.get("downwardAPI"):
            items = source["downwardAPI"].get("items") or []
            files.update(_downward_files(name, items, default_mode, pod, pod_ip, host_ip, allocatable))
        elif source.get("serviceAccountToken"):
            token = source["serviceAccountToken"]
            account = (pod.get("spec") or {}).get("serviceAccountName") or "default"
            value = sources.token(account, token.get("audience") or "", int(token.get("expirationSeconds") or 3600))
            files[_safe_relative(name, token["path"])] = (value.encode(), default_mode)
        else:
            raise _fail(name, f"projected source {sorted(source)} is not supported by the local node agent")
    return files


def _secret_files(
    name: str, spec: Mapping[str, Any], sources: VolumeSources, default_mode: int
) -> dict[str, tuple[bytes, int]]:
    secret_name = spec.get("secretName") or spec.get("name") or ""
    optional = bool(spec.get("optional"))
    data = sources.secret(secret_name)
    if data is None:
        if optional:
            return {}
        raise _fail(name, f'secret "{secret_name}" not found')
    return _selected(name, "secret", data, spec.get("items"), optional, default_mode)


def _config_map_files(
    name: str, spec: Mapping[str, Any], sources: VolumeSources, default_mode: int
) -> dict[str, tuple[bytes, int]]:
    map_name = spec.get("name") or ""
    optional = bool(spec.get("optional"))
    data = sources.config_map(map_name)
    if data is None:
        if optional:
            return {}
        raise _fail(name, f'configmap "{map_name}" not found')
    return _selected(name, "configmap", data, spec.get("items"), optional, default_mode)


def _host_path(name: str, spec: Mapping[str, Any]) -> Path:
    path = Path(spec["path"])
    kind = spec.get("type") or ""
    if kind == "DirectoryOrCreate":
        path.mkdir(parents=True, exist_ok=True, mode=0o755)
    elif kind == "FileOrCreate":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o644, exist_ok=True)
    elif kind == "Directory" and not path.is_dir():
        raise _fail(name, f"hostPath type check failed: {path} is not a directory")
    elif kind == "File" and not path.is_file():
        raise _fail(name, f"hostPath type check failed: {path} is not a file")
    return path


def mounts(container: Mapping[str, Any], volumes: Mapping[str, Volume]) -> list[Mount]:
    """The container's volumeMounts, sources resolved (subPath included)."""
    out = []
    for mount in container.get("volumeMounts") or []:
        volume = volumes.get(mount["name"])
        if volume is None:
            raise ConfigError(
                f"container {container.get('name')}: volumeMount {mount['name']!r} names no volume of the pod"
            )
        source = volume.path
        if mount.get("subPath"):
            source = (volume.path / _safe_relative(mount["name"], mount["subPath"])).resolve()
            if not source.exists():
                source.mkdir(parents=True, mode=0o755)
        out.append(
            Mount(
                source=source,
                target=str(mount["mountPath"]),
                read_only=bool(mount.get("readOnly")) or volume.read_only,
                is_file=source.is_file(),
            )
        )
    return out
