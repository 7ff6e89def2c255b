"""`python -m bench.tls`: TLS handshakes per second, pyngress next to nginx, same certificate, same run.

Both terminate the same certificate (ECDSA P-256; RSA-2048 as a second table with `--keys
ecdsa,rsa`) in front of the same backend (Debian's nginx, or bench/backend.py without it):
pyngress in file mode (the certificate is a kubernetes.io/tls Secret given as
--default-ssl-certificate, access log off) and nginx with one worker, TLS 1.2 + 1.3, the same
TLS 1.2 suites, `ssl_session_cache shared:SSL:10m` and `ssl_session_tickets on`.

The load is `openssl s_time` (C, so the client is not the Python side of the comparison), in
`--clients` parallel processes on loopback, for bounded `--duration` seconds, rounds alternating
between the two servers (order flipped each round), median of `--rounds`:

* full: `-new`, a full TLS 1.3 handshake per connection, nothing else;
* full + request: `-new -www /`, the same plus one HTTP/1.0 request proxied to the backend;
* resumed + request: `-reuse -www /`, TLS 1.3 resumed with a session ticket (s_time only reads
  the tickets sent after a TLS 1.3 handshake when it makes a request: without one, nothing resumes);
* resumed 1.2: `-reuse -tls1_2`, a TLS 1.2 abbreviated handshake (session ticket), nothing else.

Each round also reads the server's CPU time: with two cores the client can be the bottleneck,
so "handshakes per server CPU second" says what the rate alone cannot. The share of connections
s_time reports as resumed ('r') is checked, so a resumption that silently fell back to full
handshakes cannot pass for one.

`--listener` (on by default) compares the ways the HTTPS listener can be bound, in one
uvloop process each serving bench/backend.py's protocol: `create_server(ssl=context)`,
`create_server(proxy.tls.handshake.TlsAcceptor)` (which counts handshakes by outcome, what pyngress
runs), and an experiment: uvloop's SSLProtocol made by the factory with a duck-typed waiter that
counts. Same handshake loads, plus requests per second over established TLS connections (wrk,
keep-alive).

`--modes` runs pyngress pure-Python and compiled (issue #14) next to nginx; the table gives each
server's CPU µs per connection (process CPU seconds / connections) and the issue's target for resumed
handshakes (≤ 1.5x nginx's CPU). `--perf N` adds one more run of N seconds per load and server under
`perf record` and splits the CPU per connection by where it goes.

Results: a table on stdout and JSON in bench/results/tls-<time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from bench import manifests, nginx
from bench.backend import SMALL_BODY, BackendProtocol
from bench.load import Request, median, run_wrk
from bench.processes import (
    Process,
    ProcessGroup,
    StartError,
    free_port,
    start_pyngress,
    start_python_backend,
    wait_for_port,
    which,
)
from proxy.extensions import COMPILED

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_LISTENER_READY = re.compile(r"bench-tls-listener listening 127\.0\.0\.1:(\d+)")
_HTTPS = re.compile(r"pyngress listening .*\bhttps=[^:\s]+:(\d+)")
_CONNECTIONS = re.compile(r"(\d+) connections in [\d.]+s;")

SECRET_NAMESPACE = manifests.NAMESPACE
SECRET_NAME = "bench-tls"
HOST = manifests.MAIN_HOST
WARMUP_SECONDS = 1
# The same tree in both modes (issue #14): "" removes the variable, so the compiled modules load where there are
# any (`pip install .`, or scripts/build-inplace for this tree); a line says so when a process runs another mode.
MODES: dict[str, dict[str, str]] = {"pure-python": {"PYNGRESS_NO_EXTENSIONS": "1"},
                                    "compiled": {"PYNGRESS_NO_EXTENSIONS": ""},
                                    "compiled-native": {"PYNGRESS_NO_EXTENSIONS": ""},
                                    "compiled-asyncio": {"PYNGRESS_NO_EXTENSIONS": ""}}
# The compiled build with `--tls-transport native` (proxy/tls/native.py), or with the asyncio path (`compiled` runs
# the default, auto: native where it is built).
MODE_ARGS: dict[str, list[str]] = {"compiled-native": ["--tls-transport", "native"],
                                   "compiled-asyncio": ["--tls-transport", "asyncio"]}
# Issue #14's target: CPU per resumed handshake at most this many times nginx's.
RESUMED_CPU_TARGET = 1.5
# s_time -www sends f"GET {page} HTTP/1.0\r\n\r\n", with no Host. This page smuggles one in (the
# tail " HTTP/1.0" becomes the value of a dummy field), so both servers route it like a browser's.
WWW_PAGE = f"/ HTTP/1.0\r\nHost: {HOST}\r\nX-Bench:"
REQUEST = f"GET {WWW_PAGE} HTTP/1.0\r\n\r\n".encode()


@dataclass(frozen=True)
class Load:
    """One s_time load: its flags, and whether its connections are meant to resume."""

    name: str
    flags: tuple[str, ...]
    resumed: bool


LOADS: dict[str, Load] = {
    "full": Load("full (TLS 1.3)", ("-new",), False),
    "full+request": Load("full + request (TLS 1.3)", ("-new", "-www", WWW_PAGE), False),
    "resumed+request": Load("resumed + request (TLS 1.3 ticket)", ("-reuse", "-www", WWW_PAGE), True),
    "resumed-1.2": Load("resumed (TLS 1.2 ticket)", ("-reuse", "-tls1_2"), True),
}


@dataclass
class Round:
    """One s_time run (all client processes) against one server."""

    connections: int
    seconds: float
    rate: float
    server_cpu_seconds: float | None
    resumed_share: float | None  # share of connections s_time marked 'r' (reuse loads only)
    error: str = ""


@dataclass
class Row:
    table: str  # e.g. "ECDSA P-256" or "listener"
    load: str
    server: str
    rate: float | None
    cpu_percent: float | None
    per_cpu_second: float | None  # handshakes (or requests) per second of server CPU
    resumed_share: float | None
    ratio: float | None = None  # rate against the reference (nginx; create_server(ssl=) for the listener table)
    cpu_ratio: float | None = None  # the same for per_cpu_second: the fair figure when the client is the bottleneck
    rounds: list[Round] = field(default_factory=list)


# ---------------------------------------------------------------- certificates and configuration


def make_certificate(kind: str, folder: str) -> tuple[str, str, bytes, bytes]:
    """A self-signed server certificate for HOST; returns (cert path, key path, cert PEM, key PEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import NameOID

    key: Any = rsa.generate_private_key(65537, 2048) if kind == "rsa" else ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    os.makedirs(folder, exist_ok=True)
    paths = []
    for filename, content in ((f"{kind}.crt", cert_pem), (f"{kind}.key", key_pem)):
        path = os.path.join(folder, filename)
        with open(path, "wb") as out:
            out.write(content)
        os.chmod(path, 0o644)  # read by nginx (its master reads certificates before dropping privileges)
        paths.append(path)
    return paths[0], paths[1], cert_pem, key_pem


def write_pyngress_manifests(folder: str, *, backend: list[tuple[str, int]], cert_pem: bytes, key_pem: bytes) -> None:
    """The bench's usual objects (HOST routed to the backend), plus the TLS Secret and an Ingress
    listing it in spec.tls for HOST (its defaultBackend is the same backend)."""
    manifests.write_folder(folder, manifests.objects(None, backend=backend))
    secret = {
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": SECRET_NAME, "namespace": SECRET_NAMESPACE, "creationTimestamp": manifests.CREATED},
        "stringData": {"tls.crt": cert_pem.decode(), "tls.key": key_pem.decode()},
    }
    ingress = {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "tls-default", "namespace": SECRET_NAMESPACE, "creationTimestamp": manifests.CREATED},
        "spec": {
            "ingressClassName": manifests.CLASS_NAME,
            "tls": [{"hosts": [HOST], "secretName": SECRET_NAME}],
            "defaultBackend": {"service": {"name": manifests.MAIN_SERVICE, "port": {"name": manifests.PORT_NAME}}},
        },
    }
    manifests.write_json(os.path.join(folder, "50-tls.json"), [secret, ingress])


def nginx_tls_config(root: str, *, port: int, backend_port: int, cert: str, key: str) -> nginx.NginxLayout:
    """nginx terminating TLS: one worker, pyngress's protocol policy, session cache and tickets on."""
    from proxy.tls.store import TLS12_CIPHERS

    prefix = os.path.join(root, "nginx-tls")
    os.makedirs(os.path.join(prefix, "logs"), exist_ok=True)
    for folder in (root, prefix, os.path.join(prefix, "logs")):
        os.chmod(folder, 0o755)
    temp = "\n".join(f"    {kind}_temp_path {prefix}/{kind}_temp;"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    ciphers = TLS12_CIPHERS.replace(":@SECLEVEL=2", "")
    text = f"""daemon off;
worker_processes 1;
worker_rlimit_nofile {nginx.NOFILE};
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{
    worker_connections {nginx.WORKER_CONNECTIONS};
}}
http {{
    access_log off;
    default_type application/octet-stream;
{temp}
    upstream backend {{
        server 127.0.0.1:{backend_port};
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name {HOST};
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ciphers {ciphers};
        ssl_prefer_server_ciphers on;
        ssl_session_cache shared:SSL:10m;
        ssl_session_tickets on;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""
    layout = nginx.NginxLayout(prefix=prefix, conf=os.path.join(prefix, "nginx.conf"))
    with open(layout.conf, "w", encoding="utf-8") as out:
        out.write(text)
    return layout


# ---------------------------------------------------------------- checks and load


def check_server(port: int, *, cert_pem: bytes, label: str) -> None:
    """Before the load: the server presents our certificate (no SNI, as s_time) and answers s_time's request."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, context.wrap_socket(raw) as tls:
        der = tls.getpeercert(binary_form=True)
        served = ssl.DER_cert_to_PEM_cert(der).encode() if der else b""
        tls.sendall(REQUEST)
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
    if _pem_body(served) != _pem_body(cert_pem):
        raise RuntimeError(f"{label} on :{port} does not present the benchmark certificate")
    if not answer.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")):
        raise RuntimeError(f"{label} on :{port} answered {answer[:80]!r} to {REQUEST!r}")


def _pem_body(pem: bytes) -> bytes:
    return b"".join(line.strip() for line in pem.splitlines() if line and not line.startswith(b"-----"))


def run_s_time(openssl: str, port: int, load: Load, *, seconds: int, clients: int,
               cpu: Callable[[], float | None] | None) -> Round:
    """`clients` parallel `openssl s_time` processes for `seconds`; connections per wall second, summed."""
    argv = [openssl, "s_time", "-connect", f"127.0.0.1:{port}", "-time", str(seconds), *load.flags]
    cpu_start = cpu() if cpu is not None else None
    started = time.monotonic()
    processes = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                  text=True) for _ in range(clients)]
    outputs: list[tuple[str, str, int]] = []
    try:
        for process in processes:
            out, err = process.communicate(timeout=seconds + 30)
            outputs.append((out, err, process.returncode))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=5)
    elapsed = time.monotonic() - started
    cpu_end = cpu() if cpu is not None else None
    total = 0
    marks_new = marks_reused = 0
    errors = []
    for out, err, code in outputs:
        match = _CONNECTIONS.search(out)
        if match is None or code != 0:
            errors.append(f"s_time exited {code}: {(err or out)[-300:].strip()}")
            continue
        total += int(match[1])
        marks = "".join(re.findall(r"^[*r]+$", out[: match.start()], re.MULTILINE))
        marks_new += marks.count("*")
        marks_reused += marks.count("r")
    share = marks_reused / (marks_new + marks_reused) if load.resumed and (marks_new + marks_reused) else None
    server_cpu = cpu_end - cpu_start if cpu_start is not None and cpu_end is not None else None
    return Round(connections=total, seconds=elapsed, rate=total / elapsed if elapsed > 0 else 0.0,
                 server_cpu_seconds=server_cpu, resumed_share=share, error="; ".join(errors))


@dataclass
class Target:
    """A server under load: its port, and how to read its CPU time."""

    label: str
    port: int
    process: Process


def compare(openssl: str, targets: list[Target], load: Load, *, table: str, seconds: int, rounds: int,
            clients: int) -> list[Row]:
    """Rounds alternating between the targets (order flipped each round); one Row per target, ratio vs the first."""
    for target in targets:  # warm-up: session caches, pools, first allocations
        run_s_time(openssl, target.port, load, seconds=WARMUP_SECONDS, clients=clients, cpu=None)
    results: dict[str, list[Round]] = {t.label: [] for t in targets}
    for index in range(rounds):
        order = targets if index % 2 == 0 else list(reversed(targets))
        for target in order:
            result = run_s_time(openssl, target.port, load, seconds=seconds, clients=clients,
                                cpu=target.process.cpu_seconds)
            results[target.label].append(result)
            share = f", {result.resumed_share:.0%} resumed" if result.resumed_share is not None else ""
            cpu = (f", server CPU {100 * result.server_cpu_seconds / result.seconds:.0f}%"
                   if result.server_cpu_seconds is not None else "")
            print(f"  {table} | {load.name} | round {index + 1}/{rounds} {target.label}: "
                  f"{result.rate:,.0f}/s{cpu}{share}" + (f" ERROR {result.error}" if result.error else ""), flush=True)
    rows = [_row(table, load.name, label, runs) for label, runs in results.items()]
    _ratios(rows)
    return rows


def _ratios(rows: list[Row]) -> None:
    """Ratios of every row against the first (the reference)."""
    reference = rows[0]
    for row in rows[1:]:
        row.ratio = row.rate / reference.rate if row.rate is not None and reference.rate else None
        row.cpu_ratio = (row.per_cpu_second / reference.per_cpu_second
                         if row.per_cpu_second is not None and reference.per_cpu_second else None)


def _row(table: str, load: str, server: str, runs: list[Round]) -> Row:
    good = [r for r in runs if not r.error and r.connections]
    rate = median([r.rate for r in good]) if good else None
    cpus = [100 * r.server_cpu_seconds / r.seconds for r in good if r.server_cpu_seconds is not None and r.seconds]
    per_cpu = [r.connections / r.server_cpu_seconds for r in good if r.server_cpu_seconds]
    shares = [r.resumed_share for r in good if r.resumed_share is not None]
    return Row(table=table, load=load, server=server, rate=rate, cpu_percent=median(cpus) if cpus else None,
               per_cpu_second=median(per_cpu) if per_cpu else None,
               resumed_share=min(shares) if shares else None, rounds=runs)


# ---------------------------------------------------------------- the listener comparison


async def _serve_listener(mode: str, cert: str, key: str) -> None:
    """One TLS listener around bench/backend.py's protocol: `ssl` (create_server(ssl=)) or `acceptor`."""
    from proxy.tls.handshake import HandshakeStats, tls_protocol_factory
    from proxy.tls.store import new_server_context

    context = new_server_context()
    context.load_cert_chain(cert, key)
    loop = asyncio.get_running_loop()
    stats = HandshakeStats()
    if mode == "ssl":
        server = await loop.create_server(BackendProtocol, "127.0.0.1", 0, ssl=context, ssl_handshake_timeout=60,
                                          backlog=1024)
    elif mode == "direct":
        # An experiment (not what pyngress runs): uvloop's SSL protocol made by our factory, as create_server(ssl=)
        # makes it, with a duck-typed waiter that counts the outcome (uvloop calls set_result or set_exception on
        # it when the handshake ends). What counting handshakes could cost without start_tls.
        from uvloop.loop import SSLProtocol  # type: ignore[attr-defined]

        from proxy.tls.handshake import classify

        class Outcome:
            __slots__ = ()

            def cancelled(self) -> bool:
                return False

            def set_result(self, _result: object) -> None:
                stats.completed += 1

            def set_exception(self, exc: BaseException) -> None:
                stats.failures[classify(exc)] += 1

        outcome = Outcome()

        def direct() -> asyncio.BaseProtocol:
            return SSLProtocol(loop, BackendProtocol(), context, outcome, True, None,
                               ssl_handshake_timeout=60)

        server = await loop.create_server(direct, "127.0.0.1", 0, backlog=1024)
    else:
        factory = tls_protocol_factory(BackendProtocol, context, handshake_timeout=60, stats=stats)
        server = await loop.create_server(factory, "127.0.0.1", 0, backlog=1024)
    print(f"bench-tls-listener listening 127.0.0.1:{server.sockets[0].getsockname()[1]} mode={mode}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    if mode in ("acceptor", "direct"):
        print(f"bench-tls-listener handshakes completed={stats.completed} failures="
              + json.dumps({k: v for k, v in stats.failures.items() if v}), flush=True)


def _start_listener(group: ProcessGroup, mode: str, cert: str, key: str) -> Target:
    process = group.start(f"listener-{mode}", [sys.executable, "-m", "bench.tls", "--serve-listener", mode,
                                                "--cert", cert, "--key", key], cwd=_REPO)
    port = int(process.wait_line(_LISTENER_READY, timeout=30)[1])
    label = {"ssl": "create_server(ssl=)", "acceptor": "TlsAcceptor", "direct": "SSLProtocol+waiter (experiment)"}
    return Target(label=label[mode], port=port, process=process)


def listener_rows(args: argparse.Namespace, group: ProcessGroup, openssl: str, wrk: str | None, cert: str,
                  key: str, cert_pem: bytes, workdir: str, notes: list[str]) -> list[Row]:
    targets = [_start_listener(group, mode, cert, key) for mode in ("ssl", "acceptor", "direct")]
    for target in targets:
        check_server(target.port, cert_pem=cert_pem, label=target.label)
    rows: list[Row] = []
    for name in ("full", "resumed-1.2"):
        rows += compare(openssl, targets, LOADS[name], table="listener", seconds=args.duration, rounds=args.rounds,
                        clients=args.clients)
    if wrk is None:
        notes.append("wrk is not installed: no request rate over established TLS connections")
        return rows
    request = Request(path="/small", host=HOST, payload_bytes=len(SMALL_BODY))
    results: dict[str, list[Round]] = {t.label: [] for t in targets}
    for target in targets:
        run_wrk(wrk, url=f"https://127.0.0.1:{target.port}/small", request=request, duration=WARMUP_SECONDS,
                connections=args.connections, workdir=workdir)
    for index in range(args.rounds):
        for target in targets if index % 2 == 0 else list(reversed(targets)):
            result = run_wrk(wrk, url=f"https://127.0.0.1:{target.port}/small", request=request,
                             duration=args.duration, connections=args.connections, workdir=workdir,
                             measured=target.process)
            cpu_seconds = (result.cpu_percent or 0.0) / 100 * result.duration_s if result.cpu_percent else None
            failed = result.failed_requests
            results[target.label].append(Round(connections=result.requests, seconds=result.duration_s,
                                               rate=result.rps, server_cpu_seconds=cpu_seconds, resumed_share=None,
                                               error=result.error or (f"{failed} failed requests" if failed else "")))
            print(f"  listener | requests (wrk -c{args.connections}, keep-alive) | round {index + 1}/{args.rounds} "
                  f"{target.label}: {result.rps:,.0f} req/s p99 {result.p99_ms:.2f} ms errors {failed}"
                  + (f" ERROR {result.error.splitlines()[0]}" if result.error else ""), flush=True)
    load_name = f"requests/s over TLS (wrk -c{args.connections})"
    request_rows = [_row("listener", load_name, label, runs) for label, runs in results.items()]
    _ratios(request_rows)
    for target in targets:
        group.stop(target.process)
        match = re.search(r"bench-tls-listener handshakes (.+)", target.process.log_text())
        if match:
            notes.append(f"{target.label} counted: {match[1]}")
    return rows + request_rows


# ---------------------------------------------------------------- the run


def _start_backend(group: ProcessGroup, nginx_path: str | None, workdir: str) -> tuple[str, int]:
    if nginx_path is not None:
        port = free_port()
        layout = nginx.backend_config(os.path.join(workdir, "nginx"), ports=[port])
        nginx.check_config(nginx_path, layout)
        nginx.start(group, nginx_path, layout, name="backend", port=port)
        return "nginx", port
    [port] = start_python_backend(group)
    return "python", port


def _https_port(process: Process, *, timeout: float = 10.0) -> int:
    """The HTTPS port from pyngress's "listening" line (its stdout is copied to its log)."""
    deadline = time.monotonic() + timeout
    while True:
        match = _HTTPS.search(process.log_text())
        if match:
            return int(match[1])
        if time.monotonic() > deadline:
            raise StartError(f"pyngress printed no https= port:\n{process.log_tail()}")
        time.sleep(0.05)


def key_rows(args: argparse.Namespace, group: ProcessGroup, openssl: str, nginx_path: str | None, kind: str,
             backend_port: int, workdir: str) -> tuple[list[Row], dict[str, Any]]:
    table = "ECDSA P-256" if kind == "ecdsa" else "RSA 2048"
    cert, key, cert_pem, key_pem = make_certificate(kind, os.path.join(workdir, "certs"))
    folder = os.path.join(workdir, f"manifests-{kind}")
    write_pyngress_manifests(folder, backend=[("127.0.0.1", backend_port)], cert_pem=cert_pem, key_pem=key_pem)
    started: list[Process] = []
    profiles: list[dict[str, Any]] = []
    startup: dict[str, float] = {}
    ours: list[Target] = []
    targets: list[Target] = []
    try:
        for mode in args.modes:
            label = "pyngress" if len(args.modes) == 1 else f"pyngress {mode}"
            process, address, startup[mode] = start_pyngress(
                group, manifests=folder, name=f"pyngress-{kind}-{mode}", environ=MODES[mode],
                extra=["--default-ssl-certificate", f"{SECRET_NAMESPACE}/{SECRET_NAME}", "--no-access-log",
                       *MODE_ARGS.get(mode, []), *args.pyngress_arg])
            started.append(process)
            running = _running_mode(address.host, address.admin_port)
            if running != mode.removesuffix("-native").removesuffix("-asyncio"):
                print(f"  {table}: the {mode} process runs {running} (build the tree: scripts/build-inplace)",
                      flush=True)
            ours.append(Target(label, _https_port(process), process))
        if nginx_path is not None:
            port = free_port()
            layout = nginx_tls_config(os.path.join(workdir, kind), port=port, backend_port=backend_port, cert=cert,
                                      key=key)
            nginx.check_config(nginx_path, layout)
            reference = nginx.start(group, nginx_path, layout, name=f"nginx-tls-{kind}", port=port)
            targets.append(Target("nginx", port, reference))
        for target in ours:
            wait_for_port("127.0.0.1", target.port, timeout=10, process=target.process)
        targets += ours
        for target in targets:
            check_server(target.port, cert_pem=cert_pem, label=target.label)
        rows: list[Row] = []
        for name in args.loads:
            rows += compare(openssl, targets, LOADS[name], table=table, seconds=args.duration, rounds=args.rounds,
                            clients=args.clients)
        if args.perf:
            perf = which("perf")
            if perf is None:
                print("bench.tls: perf is not installed (Debian: apt-get install linux-perf): no profile",
                      file=sys.stderr)
            else:
                for name in args.loads:
                    for target in targets:
                        profiles.append(perf_profile(perf, openssl, target, LOADS[name], seconds=args.perf,
                                                     clients=args.clients, workdir=workdir))
                        print(f"  {table} | {LOADS[name].name} | perf of {target.label}: "
                              + ", ".join(f"{k} {v:.0f}%" for k, v in profiles[-1]["shares_percent"].items()
                                          if v >= 1), flush=True)
    finally:
        for target in targets:
            group.stop(target.process)
        for process in started:
            group.stop(process)
    return rows, {"pyngress_startup_s": {mode: round(seconds, 2) for mode, seconds in startup.items()},
                  "profiles": profiles}


def _running_mode(host: str, admin_port: int) -> str:
    """The mode label of pyngress_build_info on the process's /metrics (compiled or pure-python)."""
    import urllib.request

    with urllib.request.urlopen(f"http://{host}:{admin_port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    found = re.search(r'pyngress_build_info\{[^}]*mode="([^"]+)"', text)
    return found.group(1) if found else "unknown"


# ---------------------------------------------------------------- where the CPU goes (perf)

# (category, test on "dso symbol"): the first that matches takes a sample. uvloop's SSL protocol is Cython compiled
# into uvloop's loop module; its functions carry "SSLProtocol" (or "sslproto") in their names.
PROFILE_CATEGORIES: tuple[tuple[str, Callable[[str, str], bool]], ...] = (
    ("OpenSSL (libssl, libcrypto)", lambda dso, sym: "libssl" in dso or "libcrypto" in dso),
    ("uvloop SSL protocol", lambda dso, sym: "loop.cpython" in dso and ("SSLProtocol" in sym or "sslproto" in sym)),
    ("uvloop other (loop, transports)", lambda dso, sym: "loop.cpython" in dso or "uvloop" in dso
     or "libuv" in dso),
    ("CPython _ssl module", lambda dso, sym: "_ssl" in dso),
    ("pyngress compiled modules", lambda dso, sym: dso.split(".", 1)[0] in _COMPILED_NAMES),
    ("CPython interpreter (our .py, ssl.py, asyncio)", lambda dso, sym: "libpython" in dso
     or dso.startswith("python")),
    ("kernel (system calls, TCP)", lambda dso, sym: "kernel" in dso),
    ("libc and the rest", lambda dso, sym: True),
)
# perf names a shared object by its file name (h1_connection.cpython-311-x86_64-linux-gnu.so: proxy.http.h1_connection).
_COMPILED_NAMES = frozenset(name.rsplit(".", 1)[-1] for name in COMPILED)
_PERF_LINE = re.compile(r"^\s*([\d.]+)%\s+(\S+)\s+\[[.k]\]\s+(.*)$")


def perf_profile(perf: str, openssl: str, target: Target, load: Load, *, seconds: int, clients: int,
                 workdir: str) -> dict[str, Any]:
    """`perf record` of the target's processes during one s_time load; CPU shares by category, the top symbols,
    and CPU µs per connection in each category (share x the process CPU per connection of the same run)."""
    data = os.path.join(workdir, re.sub(r"[^a-z0-9.]+", "-", f"perf-{target.label}-{load.name}".lower()) + ".data")
    pids = ",".join(str(pid) for pid in (target.process.measured or [target.process.pid]))
    recorder = subprocess.Popen([perf, "record", "-q", "-F", "1999", "-p", pids, "-o", data],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        result = run_s_time(openssl, target.port, load, seconds=seconds, clients=clients,
                            cpu=target.process.cpu_seconds)
    finally:
        recorder.send_signal(signal.SIGINT)
        try:
            recorder.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            recorder.kill()
            recorder.communicate()
    report = subprocess.run([perf, "report", "-i", data, "--stdio", "--no-children", "--sort", "dso,sym",
                             "--percent-limit", "0.01"], capture_output=True, text=True, timeout=300, check=False)
    shares: dict[str, float] = {name: 0.0 for name, _ in PROFILE_CATEGORIES}
    top: list[str] = []
    for line in report.stdout.splitlines():
        match = _PERF_LINE.match(line)
        if match is None:
            continue
        percent, dso, sym = float(match[1]), match[2], match[3].strip()
        for name, test in PROFILE_CATEGORIES:
            if test(dso, sym):
                shares[name] += percent
                break
        if len(top) < 25:
            top.append(f"{percent:5.2f}%  {dso}  {sym}")
    per_connection = (1e6 * result.server_cpu_seconds / result.connections
                      if result.server_cpu_seconds and result.connections else None)
    return {"server": target.label, "load": load.name, "connections": result.connections,
            "cpu_us_per_connection": per_connection, "resumed_share": result.resumed_share,
            "shares_percent": {k: round(v, 2) for k, v in shares.items()},
            "us_per_connection": {k: round(v / 100 * per_connection, 1) if per_connection else None
                                  for k, v in shares.items()},
            "top_symbols": top, "error": result.error or (report.stderr.strip()[-300:] if report.returncode else "")}


def render_profiles(profiles: Sequence[dict[str, Any]]) -> str:
    """CPU µs per connection by category, one column per (server, load)."""
    if not profiles:
        return ""
    names = [name for name, _ in PROFILE_CATEGORIES]
    heads = [f"{p['server']} / {p['load']}" for p in profiles]
    width = max(len(n) for n in [*names, "total (process CPU)"])
    lines = ["CPU µs per connection by where it goes (perf samples x process CPU per connection):"]
    lines += [f"  [{i + 1}] {head}" for i, head in enumerate(heads)]
    lines.append(" " * (width + 2) + "".join(f"{f'[{i + 1}]':>10}" for i in range(len(heads))))
    for name in names:
        cells = [p["us_per_connection"].get(name) for p in profiles]
        lines.append(f"  {name.ljust(width)}" + "".join(f"{_cell(c, '.1f'):>10}" for c in cells))
    totals = [p["cpu_us_per_connection"] for p in profiles]
    lines.append(f"  {'total (process CPU)'.ljust(width)}" + "".join(f"{_cell(c, '.1f'):>10}" for c in totals))
    return "\n".join(lines)


def targets(rows: Sequence[Row]) -> list[str]:
    """Issue #14's resumed-handshake target, per resumed load and pyngress process: server CPU per handshake at
    most RESUMED_CPU_TARGET x nginx's (in the same run)."""
    lines = []
    for row in rows:
        if row.table == "listener" or not row.server.startswith("pyngress") or not row.cpu_ratio:
            continue
        if not any(load.resumed and load.name == row.load for load in LOADS.values()):
            continue
        each = 1 / row.cpu_ratio
        verdict = "met" if each <= RESUMED_CPU_TARGET else "MISSED"
        lines.append(f"target: {row.table} | {row.load} | {row.server}: CPU per handshake {each:.2f}x nginx "
                     f"(<= {RESUMED_CPU_TARGET}x) {verdict}")
    return lines


def _cell(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def render(rows: Sequence[Row]) -> str:
    """One aligned table; within each (table, load), the first server is the reference of `ratio`."""
    header = ["table", "load", "server", "per s", "server CPU %", "per CPU s", "CPU µs each", "resumed", "ratio",
              "CPU ratio", "CPU each x ref"]
    lines = [header]
    for row in rows:
        lines.append([row.table, row.load, row.server, _cell(row.rate, ",.0f"), _cell(row.cpu_percent, ".0f"),
                      _cell(row.per_cpu_second, ",.0f"),
                      _cell(1e6 / row.per_cpu_second if row.per_cpu_second else None, ",.0f"),
                      "" if row.resumed_share is None else f"{row.resumed_share:.0%}",
                      "" if row.ratio is None else f"{row.ratio:.2f}",
                      "" if row.cpu_ratio is None else f"{row.cpu_ratio:.2f}",
                      "" if not row.cpu_ratio else f"{1 / row.cpu_ratio:.2f}"])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for index, line in enumerate(lines):
        out.append("  ".join(c.ljust(widths[i]) if i < 3 else c.rjust(widths[i]) for i, c in enumerate(line)).rstrip())
        if index == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def _version(argv: Sequence[str]) -> str:
    try:
        result = subprocess.run(list(argv), capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = (result.stdout + result.stderr).strip().splitlines()
    return text[0] if text else "?"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.tls", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add = parser.add_argument
    add("--keys", default="ecdsa", help="comma-separated: ecdsa (P-256), rsa (2048)")
    add("--loads", default=",".join(LOADS), help=f"comma-separated, from {', '.join(LOADS)}")
    add("--duration", type=int, default=3, help="seconds of each s_time (and wrk) run")
    add("--rounds", type=int, default=3, help="alternating rounds; the median is reported")
    add("--clients", type=int, default=2, help="parallel s_time processes")
    add("--connections", type=int, default=64, help="wrk -c for the listener's request rate")
    add("--listener", action=argparse.BooleanOptionalAction, default=True,
        help="also compare create_server(ssl=) with TlsAcceptor")
    add("--modes", default="pure-python,compiled",
        help="comma-separated pyngress processes to run next to nginx: pure-python (PYNGRESS_NO_EXTENSIONS=1), "
             "compiled-native (compiled, --tls-transport native), compiled-asyncio (compiled, --tls-transport "
             "asyncio), compiled (what this tree loads by default, --tls-transport auto: build it first with "
             "scripts/build-inplace)")
    add("--perf", type=int, default=0, metavar="SECONDS",
        help="after the rounds, one more s_time run of SECONDS per load and server under `perf record`: CPU per "
             "connection split into OpenSSL, uvloop's SSL protocol, the interpreter, the kernel...")
    add("--pyngress-arg", action="append", default=[], metavar="ARG", help="extra argument for pyngress")
    add("--json", default="", metavar="FILE", help="default bench/results/tls-<time>.json")
    add("--keep", action="store_true", help="keep the working folder")
    add("--serve-listener", choices=("ssl", "acceptor", "direct"), help=argparse.SUPPRESS)
    add("--cert", help=argparse.SUPPRESS)
    add("--key", help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.serve_listener:
        import uvloop

        uvloop.run(_serve_listener(args.serve_listener, args.cert, args.key))
        return 0
    args.loads = [n.strip() for n in args.loads.split(",") if n.strip()]
    kinds = [k.strip() for k in args.keys.split(",") if k.strip()]
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()] or ["compiled"]
    unknown = ([n for n in args.loads if n not in LOADS] + [k for k in kinds if k not in ("ecdsa", "rsa")]
               + [m for m in args.modes if m not in MODES])
    if unknown:
        print(f"bench.tls: unknown load or key kind: {', '.join(unknown)}", file=sys.stderr)
        return 2
    openssl = which("openssl")
    if openssl is None:
        print("bench.tls: openssl is not installed (Debian: apt-get install openssl)", file=sys.stderr)
        return 2
    nginx_path = which("nginx")
    wrk = which("wrk")
    args.duration = max(1, args.duration)
    args.rounds = max(1, args.rounds)
    args.clients = max(1, args.clients)
    started_at = datetime.datetime.now()
    workdir = tempfile.mkdtemp(prefix="pyngress-bench-tls-")
    os.chmod(workdir, 0o755)
    notes: list[str] = []
    meta: dict[str, Any] = {
        "command": " ".join(["python -m bench.tls", *(argv if argv is not None else sys.argv[1:])]),
        "started": started_at.isoformat(timespec="seconds"), "python": platform.python_version(),
        "cpus": os.cpu_count(), "loadavg_start": os.getloadavg(), "openssl": _version([openssl, "version"]),
        "nginx": _version([nginx_path, "-v"]) if nginx_path else None, "options": {
            k: v for k, v in vars(args).items() if k not in ("serve_listener", "cert", "key")},
        "loads": {name: {"label": load.name, "s_time flags": " ".join(load.flags)} for name, load in LOADS.items()},
    }
    print(f"bench.tls: load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs; "
          f"{args.clients} s_time clients x {args.duration} s, {args.rounds} rounds", flush=True)
    if nginx_path is None:
        notes.append("nginx is not installed: pyngress alone, Python backend, ratios n/a")
    rows: list[Row] = []
    details: dict[str, Any] = {}
    status = 0
    group = ProcessGroup(workdir)
    try:
        backend_kind, backend_port = _start_backend(group, nginx_path, workdir)
        meta["backend"] = backend_kind
        for kind in kinds:
            found, details[kind] = key_rows(args, group, openssl, nginx_path, kind, backend_port, workdir)
            rows += found
        if args.listener:
            cert, key, cert_pem, _ = make_certificate("ecdsa", os.path.join(workdir, "certs-listener"))
            rows += listener_rows(args, group, openssl, wrk, cert, key, cert_pem, workdir, notes)
    except KeyboardInterrupt:
        notes.append("interrupted")
        status = 130
    except (StartError, RuntimeError, OSError, subprocess.SubprocessError) as error:
        notes.append(f"failed: {error}")
        status = 1
    finally:
        group.close()
        meta["loadavg_end"] = os.getloadavg()
        meta["notes"] = notes
        path = args.json or os.path.join(_REPO, "bench", "results", f"tls-{started_at:%Y%m%d-%H%M%S}.json")
        if rows:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            with open(path, "w", encoding="utf-8") as out:
                json.dump({"meta": meta, "rows": [asdict(r) for r in rows], "details": details}, out, indent=2,
                          default=str)
                out.write("\n")
        if args.keep:
            print(f"bench.tls: working folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if rows:
        print()
        print(render(rows))
        for line in targets(rows):
            print(line)
        profiles = [p for detail in details.values() for p in detail.get("profiles", [])]
        if profiles:
            print()
            print(render_profiles(profiles))
        print("\nper s: connections (requests for wrk) per wall second, summed over the clients. per CPU s: the same "
              "per second of the server's own CPU time.\nratio, CPU ratio: the two against the first server of the "
              "same table and load (nginx; create_server(ssl=) for the listener). When the server's CPU % is well "
              "under 100, the clients were the bottleneck and CPU ratio is the figure to read.")
    print(f"\nbench.tls: load average {' '.join(f'{x:.2f}' for x in meta['loadavg_start'])} at start, "
          f"{' '.join(f'{x:.2f}' for x in meta['loadavg_end'])} at end")
    for note in notes:
        print(f"  note: {note}")
    if rows:
        print(f"bench.tls: results written to {path}")
    return status


if __name__ == "__main__":
    sys.exit(main())
