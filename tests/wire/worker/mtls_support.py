"""Kafka behind a mutual-TLS terminator whose address IS the address the broker advertises.

noida-db advertises exactly the `--host:port` it binds. So it runs in a private network namespace (`unshare --net`)
bound to 127.0.0.1:P there, reachable from outside only through a unix socket (a filesystem path, so it crosses
namespaces); in this namespace a TLS terminator listens on 127.0.0.1:P, requires a client certificate signed by the
test CA, and forwards the plaintext bytes to that unix socket. A client bootstrapping to 127.0.0.1:P is told to use
127.0.0.1:P, which is the terminator again: every Kafka connection is mutual TLS.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# runs inside the namespace: loopback up, noida-db (dies with us), unix socket -> 127.0.0.1:P
_INNER = r"""
import ctypes, os, signal, socket, subprocess, sys, threading
binary, data, port, unix_path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
libc = ctypes.CDLL(None, use_errno=True)
peer = subprocess.Popen(
    [binary, "start", "--data-dir", data, "--host", "127.0.0.1", "--only", "kafka", "--kafka-port", str(port)],
    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=lambda: libc.prctl(1, signal.SIGKILL),
)
signal.signal(signal.SIGTERM, lambda *_: (peer.kill(), os._exit(0)))
def pump(src, dst):
    try:
        while chunk := src.recv(65536):
            dst.sendall(chunk)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
listener = socket.socket(socket.AF_UNIX)
listener.bind(unix_path)
listener.listen(64)
print("ready", flush=True)
while True:
    client, _ = listener.accept()
    try:
        upstream = socket.create_connection(("127.0.0.1", port), timeout=10)
    except OSError:
        client.close()
        continue
    upstream.settimeout(None)
    threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
    threading.Thread(target=pump, args=(upstream, client), daemon=True).start()
"""


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    stranger_cert: Path  # a client certificate from ANOTHER CA: the terminator must refuse it
    stranger_key: Path


def make_pki(directory: Path) -> Pki:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    def write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return path

    def authority(common: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name(common))
            .issuer_name(name(common))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        return cert, key

    def leaf(common: str, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], server: bool, stem: str):
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(common))
            .issuer_name(issuer[0].subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        cert = builder.sign(issuer[1], hashes.SHA256())
        cert_path = directory / f"{stem}.crt"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return cert_path, write_key(key, directory / f"{stem}.key")

    ca = authority("toolkit test CA")
    other = authority("someone else's CA")
    ca_path = directory / "ca.crt"
    ca_path.write_bytes(ca[0].public_bytes(serialization.Encoding.PEM))
    server_cert, server_key = leaf("kafka-0", ca, True, "server")
    client_cert, client_key = leaf("syslog-receiver", ca, False, "client")
    stranger_cert, stranger_key = leaf("stranger", other, False, "stranger")
    return Pki(ca_path, server_cert, server_key, client_cert, client_key, stranger_cert, stranger_key)


class MtlsTerminator:
    """TLS server on 127.0.0.1:port requiring a client certificate from `pki.ca`; plaintext to a unix socket."""

    def __init__(self, port: int, unix_path: Path, pki: Pki) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca))
        self.context.verify_mode = ssl.CERT_REQUIRED
        self.context.load_cert_chain(str(pki.server_cert), str(pki.server_key))
        self.unix_path = unix_path
        self.handshakes = 0
        self.refused: list[str] = []
        self.client_names: set[str] = set()
        self._lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", port), reuse_port=False)
        self.listener.settimeout(0.5)
        self._stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                raw, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._connection, args=(raw,), daemon=True).start()

    def _connection(self, raw: socket.socket) -> None:
        raw.settimeout(10)
        try:
            tls = self.context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            with self._lock:
                self.refused.append(str(exc))
            raw.close()
            return
        peer = tls.getpeercert() or {}
        subject = dict(item[0] for item in peer.get("subject", ()))
        with self._lock:
            self.handshakes += 1
            self.client_names.add(str(subject.get("commonName")))
        tls.settimeout(None)
        upstream = socket.socket(socket.AF_UNIX)
        try:
            upstream.connect(str(self.unix_path))
        except OSError:
            tls.close()
            return

        def pump(src: socket.socket, dst: socket.socket) -> None:
            try:
                while chunk := src.recv(65536):
                    dst.sendall(chunk)
            except OSError:
                pass
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

        threading.Thread(target=pump, args=(upstream, tls), daemon=True).start()
        pump(tls, upstream)

    def close(self) -> None:
        self._stop.set()
        self.listener.close()


@dataclass(frozen=True)
class MtlsKafka:
    bootstrap: str
    pki: Pki
    terminator: MtlsTerminator


def namespaces_available() -> str | None:
    """None when `unshare --net` works here, else the reason it does not."""
    try:
        probe = subprocess.run(["unshare", "--net", "true"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare not usable: {exc}"
    return None if probe.returncode == 0 else f"unshare --net refused: {probe.stderr.strip()}"


@contextlib.contextmanager
def kafka_behind_mtls(directory: Path, port: int) -> Iterator[MtlsKafka]:
    from toolkit.targets.peer import server_binary

    binary = server_binary()
    if binary is None:
        raise RuntimeError("noida-db is not installed")
    pki = make_pki(directory)
    unix_path = directory / "kafka.sock"
    inner = subprocess.Popen(
        ["unshare", "--net", sys.executable, "-c", _INNER, str(binary), str(directory / "data"), str(port),
         str(unix_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    terminator: MtlsTerminator | None = None
    try:
        assert inner.stdout is not None and inner.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the broker inside answers through the unix socket
            with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as probe:
                probe.settimeout(1)
                probe.connect(str(unix_path))
                # an ApiVersions v0 request; any answer means the broker is up
                probe.sendall(b"\x00\x00\x00\x0e\x00\x12\x00\x00\x00\x00\x00\x01\x00\x04test")
                if probe.recv(4):
                    break
            time.sleep(0.2)
        terminator = MtlsTerminator(port, unix_path, pki)
        yield MtlsKafka(f"127.0.0.1:{port}", pki, terminator)
    finally:
        if terminator is not None:
            terminator.close()
        inner.terminate()
        try:
            inner.wait(10)
        except subprocess.TimeoutExpired:
            inner.kill()
            inner.wait(10)
