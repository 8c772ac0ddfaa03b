"""The last step before a container's program runs: enter the pod's namespaces, mount its volumes, drop privileges,
exec. Stdlib only and run by path (`python -I -S sandbox.py`), so it starts in milliseconds and imports nothing of
the toolkit. The agent writes a JSON spec on stdin (never on disk: it holds the container's environment, secrets
included) and passes a status pipe `status_fd`; the launcher's steps, in order:

  run mode (a container):
    1. setns into the pod's network namespace (/run/netns/<name>);
    2. unshare a private mount namespace and a UTS namespace; hostname = the pod's hostname;
    3. mount propagation private (nothing leaks to the host), a tmpfs at `scratch` for overlay upper layers;
    4. overlays: each directory in `overlays` (the nearest existing ancestor of a mountPath the host lacks, and
       directories of the image's own paths that others cannot traverse) gets an overlayfs with itself as lower
       layer and a tmpfs upper layer, so mount points can be created and image paths made traversable (`o+x`)
       in this mount namespace only; the host's files are never changed;
    5. bind mounts (volumes at their exact mountPath, /etc/hosts, /etc/resolv.conf, /etc/hostname), read-only
       where asked; with read_only_root, `/` and the overlays are remounted read-only afterwards;
    6. chdir, setgroups/setgid/setuid (runAsUser, runAsGroup, supplementary groups incl. fsGroup),
       PR_SET_NO_NEW_PRIVS when asked, stdin = /dev/null, then execve(argv) with exactly `env` (PATH lookup
       through env's PATH, as a container runtime does).
  join mode (an exec probe or preStop hook): setns into the net, UTS and mount namespaces of a running container
  process, then steps 6.

Any failure before exec is written to the status pipe (one line: `<reason>\t<message>`) and the launcher exits
with 128; a successful exec closes the pipe empty (it is close-on-exec). The agent reads the pipe to tell "could
not start" (StartError / CreateContainerError) from "started and exited".
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2
PR_SET_NO_NEW_PRIVS = 38

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class LaunchError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _check(result: int, what: str, reason: str = "CreateContainerError") -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise LaunchError(reason, f"{what}: {os.strerror(errno)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    encoded = [None if s is None else s.encode() for s in (source, target, fstype, data)]
    _check(_libc.mount(encoded[0], encoded[1], encoded[2], ctypes.c_ulong(flags), encoded[3]), f"mount {target}")


def _setns(path: str, kind: int) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _check(_libc.setns(fd, kind), f"setns {path}")
    finally:
        os.close(fd)


def _mount_flags(path: str) -> int:
    """The per-mount flags a read-only bind remount must keep (nosuid, nodev)."""
    stats = os.statvfs(path)
    flags = 0
    if stats.f_flag & os.ST_NOSUID:
        flags |= MS_NOSUID
    if stats.f_flag & os.ST_NODEV:
        flags |= MS_NODEV
    return flags


def _remount_read_only(path: str) -> None:
    _mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | _mount_flags(path))


def resolve_in(root: str, path: str) -> str:
    """`path` inside `root`, following symlinks as the container will (absolute links restart at `root`), so
    nothing is ever created or mounted outside the container's root."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root + "/" + "/".join([*resolved, part])
        if os.path.islink(candidate):
            hops += 1
            if hops > 40:
                raise LaunchError("CreateContainerError", f"too many symlinks under {path}")
            link = os.readlink(candidate)
            if link.startswith("/"):
                resolved = []
            parts = [p for p in link.split("/") if p not in ("", ".")] + parts
            continue
        resolved.append(part)
    return root + "/" + "/".join(resolved)


def overlay_dirs(mounts: list, traversable: list) -> list:
    """The directories that get an overlay: each image directory to make traversable, and the nearest existing
    ancestor (below `/`, which is the container's own tmpfs) of every mountPath the host lacks (symlinks
    resolved, as inside the container); reduced to a minimal cover (no overlay below another), shortest first."""
    wanted = set(traversable)
    for mount in mounts:
        target = resolve_in("", mount["target"])  # the host's view equals the container's: its root mirrors it
        if os.path.lexists(target):
            continue
        ancestor = os.path.dirname(target)
        while not os.path.isdir(ancestor):
            ancestor = os.path.dirname(ancestor)
        if ancestor != "/":
            wanted.add(ancestor)
    chosen: list = []
    for directory in sorted(wanted, key=lambda d: (d.count("/"), d)):
        if not any(directory == c or directory.startswith(c + "/") for c in chosen):
            chosen.append(directory)
    return chosen


def _prepare_root(spec: dict) -> str:
    """Build the container's root under `scratch` and return it (see the module docstring, steps 2-5)."""
    hostname = spec.get("hostname") or ""
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWUTS), "unshare mount and UTS namespaces")
    if hostname:
        encoded = hostname.encode()
        _check(_libc.sethostname(encoded, len(encoded)), f"sethostname {hostname}")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    scratch = spec["scratch"]
    os.makedirs(scratch, exist_ok=True)
    _mount("tmpfs", scratch, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64m")
    root = f"{scratch}/root"
    os.makedirs(root)
    os.chmod(root, 0o755)
    top_level = []
    for entry in sorted(os.listdir("/")):
        host, inside = f"/{entry}", f"{root}/{entry}"
        if os.path.islink(host):
            os.symlink(os.readlink(host), inside)
        elif os.path.isdir(host):
            os.mkdir(inside)
            _mount(host, inside, None, MS_BIND | MS_REC)
            top_level.append(inside)
        elif os.path.isfile(host):
            open(inside, "a").close()
            _mount(host, inside, None, MS_BIND)
            top_level.append(inside)
    overlays = overlay_dirs(spec.get("mounts") or [], spec.get("traversable") or [])
    for index, directory in enumerate(overlays):
        upper, work = f"{scratch}/overlay-{index}/upper", f"{scratch}/overlay-{index}/work"
        os.makedirs(upper)
        os.makedirs(work)
        layers = f"lowerdir={directory},upperdir={upper},workdir={work}"
        _mount("overlay", resolve_in(root, directory), "overlay", 0, layers)
    for directory in spec.get("traversable") or []:
        inside = resolve_in(root, directory)
        os.chmod(inside, (os.stat(inside).st_mode & 0o7777) | 0o011)
    mounts = spec.get("mounts") or []
    targets = []
    for mount in mounts:  # mount points first: the root may turn read-only below
        target = resolve_in(root, mount["target"])
        targets.append(target)
        if mount.get("is_file"):
            if not os.path.lexists(target):
                os.makedirs(os.path.dirname(target), exist_ok=True)
                open(target, "a").close()
        else:
            os.makedirs(target, exist_ok=True)
    if spec.get("read_only_root"):
        for path in [*top_level, *(resolve_in(root, d) for d in overlays)]:
            _remount_read_only(path)
        _remount_read_only(scratch)
    for mount, target in zip(mounts, targets, strict=True):
        _mount(mount["source"], target, None, MS_BIND | MS_REC)
        if mount.get("read_only"):
            _remount_read_only(target)
    return root


def _enter_root(root: str, scratch: str) -> None:
    os.chdir(root)
    _check(_libc.chroot(b"."), f"chroot {root}")
    os.chdir("/")
    if os.path.ismount(scratch):  # the copy of the scratch tmpfs that came in with the bind of its top-level dir
        _check(_libc.umount2(scratch.encode(), MNT_DETACH), f"detach {scratch}")


def _become(spec: dict) -> None:
    cwd = spec.get("cwd") or "/"
    try:
        os.chdir(cwd)
    except OSError as error:
        raise LaunchError("CreateContainerError", f"chdir to cwd ({cwd!r}) failed: {error}") from None
    try:
        os.setgroups([int(g) for g in spec.get("groups") or []])
        os.setresgid(int(spec["gid"]), int(spec["gid"]), int(spec["gid"]))
        os.setresuid(int(spec["uid"]), int(spec["uid"]), int(spec["uid"]))
    except OSError as error:
        message = f"cannot become uid {spec['uid']} gid {spec['gid']}: {error}"
        raise LaunchError("CreateContainerError", message) from None
    if spec.get("no_new_privs"):
        _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")


def _exec(spec: dict) -> None:
    argv = [str(a) for a in spec["argv"]]
    env = {str(k): str(v) for k, v in spec["env"].items()}
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    try:
        os.execvpe(argv[0], argv, env)
    except OSError as error:
        where = "in $PATH" if "/" not in argv[0] else ""
        detail = "executable file not found " + where if isinstance(error, FileNotFoundError) else str(error)
        raise LaunchError("StartError", f'exec: "{argv[0]}": {detail.strip()}') from None


def main() -> int:
    spec = json.loads(sys.stdin.read())
    status_fd = int(spec["status_fd"])
    os.set_inheritable(status_fd, False)
    try:
        if spec["mode"] == "join":
            pid = int(spec["pid"])
            namespaces = [(f"/proc/{pid}/ns/{kind}", flag) for kind, flag in
                          (("net", CLONE_NEWNET), ("uts", CLONE_NEWUTS), ("mnt", CLONE_NEWNS))]  # fmt: skip
            for path, flag in namespaces:
                _setns(path, flag)
        else:
            _setns(spec["netns"], CLONE_NEWNET)
            root = _prepare_root(spec)
            _enter_root(root, spec["scratch"])
        _become(spec)
        _exec(spec)
    except LaunchError as error:
        os.write(status_fd, f"{error.reason}\t{error}\n".encode("utf-8", "replace"))
    except (OSError, KeyError, ValueError) as error:
        os.write(status_fd, f"CreateContainerError\t{type(error).__name__}: {error}\n".encode("utf-8", "replace"))
    return 128


if __name__ == "__main__":
    sys.exit(main())
