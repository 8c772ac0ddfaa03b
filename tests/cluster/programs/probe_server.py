"""A small real program for the pod runtime tests (run by the agent as a container of `toolkit-test-python`).

- At start: appends the time to $WORK_DIR/starts (an emptyDir survives container restarts), removes the
  `unhealthy` flag, creates the `ready` flag when READY_AT_START=1; exits at once with CRASH_CODE when set.
- HTTP on $PORT: /report (JSON of what the container sees: argv, env, identity, hostname, files under
  REPORT_PATHS with modes and owners, REPORT_NAMES resolved, where it may write), /ready (200 while the `ready` flag
  exists, else 503), /healthz (500 while the `unhealthy` flag exists), /control?ready=0|1&healthy=0|1.
- SIGTERM: prints "SIGTERM", keeps serving for TERM_DELAY seconds, prints "exiting", exits 0.
"""

import http.server
import json
import os
import signal
import socket
import stat
import sys
import threading
import time
import urllib.parse

WORK = os.environ.get("WORK_DIR", "/var/probe")


def flag(name: str) -> str:
    return os.path.join(WORK, name)


def report() -> dict:
    files = {}
    for root in filter(None, os.environ.get("REPORT_PATHS", "").split(",")):
        for directory, dirs, names in os.walk(root, followlinks=True):
            dirs[:] = [d for d in dirs if not d.startswith("..")]
            for name in names:
                path = os.path.join(directory, name)
                info = os.stat(path)
                try:
                    with open(path) as handle:
                        content, readable = handle.read()[:300], True
                except OSError as error:
                    content, readable = f"{type(error).__name__}: {error.strerror}", False
                files[path] = {
                    "mode": oct(stat.S_IMODE(info.st_mode)),
                    "uid": info.st_uid,
                    "gid": info.st_gid,
                    "readable": readable,
                    "content": content,
                }
    names = {}
    for name in filter(None, os.environ.get("REPORT_NAMES", "").split(",")):
        try:
            names[name] = sorted({a[4][0] for a in socket.getaddrinfo(name, None, socket.AF_INET)})
        except OSError as error:
            names[name] = f"unresolved: {error}"
    writable = {}
    for directory in ("/", "/etc", WORK):
        try:
            with open(os.path.join(directory, ".probe-write"), "w"):
                pass
            writable[directory] = True
        except OSError:
            writable[directory] = False
    with open(flag("starts")) as handle:
        starts = handle.read().split()
    return {
        "argv": sys.argv,
        "env": dict(os.environ),
        "uid": os.getuid(),
        "gid": os.getgid(),
        "groups": sorted(os.getgroups()),
        "hostname": socket.gethostname(),
        "cwd": os.getcwd(),
        "files": files,
        "names": names,
        "writable": writable,
        "starts": starts,
    }


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def answer(self, code: int, body: bytes = b"") -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        url = urllib.parse.urlparse(self.path)
        if url.path == "/report":
            self.answer(200, json.dumps(report()).encode())
        elif url.path == "/ready":
            self.answer(200 if os.path.exists(flag("ready")) else 503)
        elif url.path == "/healthz":
            self.answer(500 if os.path.exists(flag("unhealthy")) else 200)
        elif url.path == "/control":
            for key, value in urllib.parse.parse_qsl(url.query):
                name = {"ready": "ready", "healthy": "unhealthy"}[key]
                wanted = (value == "1") == (key == "ready")
                if wanted:
                    open(flag(name), "w").close()
                elif os.path.exists(flag(name)):
                    os.remove(flag(name))
            self.answer(200)
        else:
            self.answer(404)


def main() -> None:
    with open(flag("starts"), "a") as handle:
        handle.write(f"{time.time():.3f}\n")
    if os.path.exists(flag("unhealthy")):
        os.remove(flag("unhealthy"))
    if os.environ.get("READY_AT_START") == "1":
        open(flag("ready"), "w").close()
    if os.environ.get("CRASH_CODE"):
        print("crashing with", os.environ["CRASH_CODE"], flush=True)
        sys.exit(int(os.environ["CRASH_CODE"]))
    server = http.server.ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8080"))), Handler)

    def on_term(signum: int, frame: object) -> None:
        print("SIGTERM", flush=True)

        def finish() -> None:
            time.sleep(float(os.environ.get("TERM_DELAY", "0")))
            print("exiting", flush=True)
            os._exit(0)

        threading.Thread(target=finish, daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    print("serving", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
