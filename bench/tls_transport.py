"""`python -m bench.tls_transport`: what a leaner TLS transport could save per handshake (issue #14, experiment).

Server CPU µs per connection (process CPU seconds / connections, `openssl s_time` as the load,
bench/tls.py's rounds and CPU reading), same certificate (ECDSA P-256), same run, for:

* `uvloop-ssl`: uvloop's `create_server(ssl=context)` around bench/backend.py's protocol (the floor of
  what pyngress runs today: uvloop's SSLProtocol, MemoryBIO copies, an SSLWantReadError per step);
* `acceptor`: what pyngress runs (proxy/tls/handshake.py's TlsAcceptor: plain TCP, then `loop.start_tls` per
  connection, to count handshakes by outcome);
* `native`: proxy/tls/_native.pyx (compiled: `scripts/build-inplace`): OpenSSL on the socket (`SSL_set_fd`),
  accept, handshake, reads and writes in C, only the app protocol in Python;
* `direct`: the standard library only: a non-blocking listening socket watched with `loop.add_reader`,
  one `accept()` per readiness, `context.wrap_socket(sock, server_side=True,
  do_handshake_on_connect=False)`, `do_handshake()` on readiness, then `recv`/`send` on the SSLSocket
  (OpenSSL reads and writes the file descriptor itself: no memory BIO), with a minimal transport feeding
  the same protocol;
* `direct-batch`: the same, accepting until the backlog is empty on each readiness;
* `direct-sni`: direct-batch with an SNI callback that picks the context from a dict (what pyngress's
  certificate store does per handshake);
* `direct-sslobj`: direct-batch calling the C `_ssl._SSLSocket` (`SSLSocket._sslobj`, private) instead of ssl.py's
  Python wrappers: what the Python layer of ssl.py costs;
* `direct-lean`: direct-batch with private C-level calls only (`_socket.socket._accept`, `_socket.socket(fileno=)`,
  `SSLContext._wrap_socket`, the C `_SSLSocket`'s methods): nothing of socket.py or ssl.py per connection;
* `direct-1ticket`: direct with `SSLContext.num_tickets = 1` (OpenSSL, and nginx, send two TLS 1.3 tickets after
  each handshake; s_time uses one);
* `nginx`: one worker, `return 200` from the same location (no upstream), session cache and tickets.

Loads: `resumed-1.2` (TLS 1.2 abbreviated handshake with a ticket), `resumed+request` (TLS 1.3 ticket
plus one HTTP/1.0 request and its answer), `full` (TLS 1.3 full handshake), `full+request`.
The share of connections s_time marks resumed is checked as in bench/tls.py.

Results: a table on stdout (CPU µs each and x nginx) and JSON in bench/results/tls-transport-<time>.json.
"""

from __future__ import annotations

import _socket
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
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

from bench import nginx
from bench.backend import SMALL_BODY, BackendProtocol
from bench.processes import ProcessGroup, free_port, which
from bench.tls import (
    LOADS,
    Row,
    Target,
    check_server,
    compare,
    make_certificate,
    nginx_tls_config,
    perf_profile,
    render,
    render_profiles,
)

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_READY = re.compile(r"bench-tls-transport listening 127\.0\.0\.1:(\d+)")
SERVERS = ("uvloop-ssl", "acceptor", "native", "direct", "direct-batch", "direct-sni", "direct-sslobj", "direct-lean",
           "direct-1ticket")


# ---------------------------------------------------------------- the standard-library path (experiment)


_OPEN: set[asyncio.Transport] = set()


class _WeakSocket(_socket.socket):
    """The C socket type, weak-referenceable (SSLContext._wrap_socket keeps a weak reference to it)."""

    __slots__ = ("__weakref__",)


class _DirectTransport(asyncio.Transport):
    """Just enough of a transport for bench/backend.py's protocol: write (with a retry buffer), close.

    A measuring device, not a server: no handshake timeout, no flow control, no pause/resume. Two uvloop facts it
    had to respect, which a real transport would too: on POLLERR uvloop runs the reader callback once and closes
    its poll handle while keeping it registered under the fd, so a callback must read on to the error and drop the
    connection itself (else a later add_reader on the same fd number fails: "the handler is closed"); and every
    socket must be closed after remove_reader/remove_writer by its owner, never by the garbage collector."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: Any, fd: int, raw: bool, io: Any = None) -> None:
        super().__init__()
        self._loop = loop
        self._sock = sock
        self._fd = fd
        if io is not None:  # direct-lean: the C _SSLSocket from SSLContext._wrap_socket
            self._io = io
            self._shutdown: Any = io.shutdown
        else:
            self._io = sock._sslobj if raw else sock
            self._shutdown = sock._sslobj.shutdown if raw else sock.unwrap
        self._pending = b""
        self._closing = False
        self._protocol: asyncio.Protocol | None = None

    def handshake(self) -> None:
        """The one reader callback: the handshake, then reads. uvloop's poll runs it once more on POLLERR and
        then closes itself, so it always reads on to the error (or SSLWantReadError) before returning."""
        if self._protocol is None:
            try:
                self._io.do_handshake()
            except ssl.SSLWantReadError:
                return
            except ssl.SSLWantWriteError:
                self._loop.add_writer(self._fd, self.handshake)
                return
            except OSError:
                self._drop()
                return
            self._loop.remove_writer(self._fd)
            protocol = BackendProtocol()
            self._protocol = protocol
            protocol.connection_made(self)
        for _ in range(16):
            try:
                data = self._io.read(262144)
            except ssl.SSLWantReadError:
                return
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                data = b""
            except OSError:
                self._drop()
                return
            if not data:
                self._drop()
                return
            self._protocol.data_received(data)
            if self._closing:
                return

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._pending:
            self._pending += data
            return
        try:
            sent = self._io.write(data)
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
            sent = 0
        except OSError:
            self._drop()
            return
        if sent < len(data):
            self._pending = bytes(data[sent:])
            self._loop.add_writer(self._fd, self._flush)

    def _flush(self) -> None:
        try:
            sent = self._io.write(self._pending)
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
            return
        except OSError:
            self._drop()
            return
        self._pending = self._pending[sent:]
        if not self._pending:
            self._loop.remove_writer(self._fd)
            if self._closing:
                self._finish()

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        if not self._pending:
            self._finish()

    def _finish(self) -> None:
        try:
            self._shutdown()  # sends close_notify; non-blocking, so it does not wait for the peer's
        except (ssl.SSLError, OSError):
            pass
        self._drop()

    def _drop(self) -> None:
        self._closing = True
        self._loop.remove_reader(self._fd)
        self._loop.remove_writer(self._fd)
        self._sock.close()
        _OPEN.discard(self)
        protocol, self._protocol = self._protocol, None
        if protocol is not None:
            protocol.connection_lost(None)


async def _serve_direct(context: ssl.SSLContext, *, batch: bool, raw: bool, lean: bool = False) -> socket.socket:
    loop = asyncio.get_running_loop()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    listener.setblocking(False)
    wrap = context.wrap_socket
    c_accept = listener._accept  # type: ignore[attr-defined]
    c_wrap = context._wrap_socket  # type: ignore[attr-defined]
    c_socket = _WeakSocket
    nodelay = (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def accept_lean() -> bool:
        """Private C-level calls only (_socket.socket._accept, SSLContext._wrap_socket): no ssl.py/socket.py."""
        try:
            fd, _ = c_accept()
        except (BlockingIOError, InterruptedError):
            return False
        sock = c_socket(fileno=fd)
        sock.setblocking(False)
        sock.setsockopt(*nodelay)
        io = c_wrap(sock, True, None, owner=None)
        transport = _DirectTransport(loop, sock, fd, True, io)
        _OPEN.add(transport)
        loop.add_reader(fd, transport.handshake)
        return True

    def accept_one() -> bool:
        try:
            sock, _ = listener.accept()
        except (BlockingIOError, InterruptedError):
            return False
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        tls = wrap(sock, server_side=True, do_handshake_on_connect=False)
        fd = tls.fileno()
        transport = _DirectTransport(loop, tls, fd, raw)
        _OPEN.add(transport)  # the server's connection registry: a socket is never closed by the GC behind uvloop
        loop.add_reader(fd, transport.handshake)
        return True

    if lean:
        accept_one = accept_lean

    def on_readable() -> None:
        if batch:
            for _ in range(64):
                if not accept_one():
                    break
        else:
            accept_one()

    loop.add_reader(listener.fileno(), on_readable)
    return listener


async def _serve(mode: str, cert: str, key: str) -> None:
    from proxy.tls.store import new_server_context

    context = new_server_context()
    context.load_cert_chain(cert, key)
    if mode == "direct-sni":
        contexts = {"bench.local": context}

        def pick(sslobj: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
            chosen = contexts.get(name or "")
            if chosen is not None and chosen is not _ctx:
                sslobj.context = chosen

        context.sni_callback = pick
    loop = asyncio.get_running_loop()
    closing: Callable[[], None]
    if mode == "direct-1ticket":
        context.num_tickets = 1
    if mode in ("uvloop-ssl", "acceptor"):
        if mode == "acceptor":
            from proxy.tls.handshake import HandshakeStats, tls_protocol_factory

            factory: Callable[[], asyncio.BaseProtocol] = tls_protocol_factory(
                BackendProtocol, context, handshake_timeout=60, stats=HandshakeStats())
            server = await loop.create_server(factory, "127.0.0.1", 0, backlog=1024)
        else:
            server = await loop.create_server(BackendProtocol, "127.0.0.1", 0, ssl=context,
                                              ssl_handshake_timeout=60, backlog=1024)
        port = server.sockets[0].getsockname()[1]
        closing = server.close
    elif mode == "native":
        from proxy.tls import _native  # type: ignore[attr-defined]
        from proxy.tls.handshake import _SSL_REASONS, OTHER, HandshakeStats

        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1024)
        native = _native.NativeServer(loop, listener, context, BackendProtocol, stats=HandshakeStats(),
                                      handshake_timeout=60.0, classify=lambda name: _SSL_REASONS.get(name, OTHER))
        native.start()
        port = listener.getsockname()[1]
        closing = listener.close
    else:
        listener = await _serve_direct(context, batch=mode != "direct", raw=mode == "direct-sslobj",
                                        lean=mode == "direct-lean")
        port = listener.getsockname()[1]
        closing = listener.close
    print(f"bench-tls-transport listening 127.0.0.1:{port} mode={mode}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    closing()


# ---------------------------------------------------------------- the pieces, one at a time (--micro)


def micro(cert: str, key: str, count: int) -> dict[str, float]:
    """CPU µs per call of the per-connection steps of each path, on socket pairs (no handshake, no load)."""
    from proxy.tls.store import new_server_context

    context = new_server_context()
    context.load_cert_chain(cert, key)
    results: dict[str, float] = {}

    def timed(name: str, step: Callable[[], None]) -> None:
        for _ in range(min(200, count)):
            step()
        start = time.process_time()
        for _ in range(count):
            step()
        results[name] = 1e6 * (time.process_time() - start) / count

    pairs: list[tuple[socket.socket, socket.socket]] = []

    def pair() -> socket.socket:
        a, b = socket.socketpair()
        pairs.append((a, b))
        return a

    def close_pairs() -> None:
        for a, b in pairs:
            a.close()
            b.close()
        pairs.clear()

    def socketpair_only() -> None:
        pair()
        close_pairs()

    def wrap_public() -> None:
        sock = pair()
        sock.setblocking(False)
        context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False).close()
        close_pairs()

    def wrap_private() -> None:
        a, b = socket.socketpair()
        raw = _WeakSocket(fileno=a.detach())
        context._wrap_socket(raw, True, None, owner=None)  # type: ignore[attr-defined]
        raw.close()
        b.close()

    def wrap_bio() -> None:
        context.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_side=True)

    quiet, partner = socket.socketpair()  # a peer that never sends: each do_handshake wants to read
    quiet.setblocking(False)
    waiting = context.wrap_socket(quiet, server_side=True, do_handshake_on_connect=False)
    waiting_c = waiting._sslobj  # type: ignore[attr-defined]

    def want_read_public() -> None:
        try:
            waiting.do_handshake()
        except ssl.SSLWantReadError:
            pass

    def want_read_c() -> None:
        try:
            waiting_c.do_handshake()
        except ssl.SSLWantReadError:
            pass

    base = 0.0
    timed("socketpair + close (subtracted below)", socketpair_only)
    base = results["socketpair + close (subtracted below)"]
    timed("SSLContext.wrap_socket (ssl.py) + close", wrap_public)
    timed("SSLContext._wrap_socket (C, private) + close", wrap_private)
    for name in ("SSLContext.wrap_socket (ssl.py) + close", "SSLContext._wrap_socket (C, private) + close"):
        results[name] -= base
    timed("SSLContext.wrap_bio (uvloop's and asyncio's way)", wrap_bio)
    timed("do_handshake -> SSLWantReadError (ssl.py)", want_read_public)
    timed("do_handshake -> SSLWantReadError (C _SSLSocket)", want_read_c)
    waiting.close()
    partner.close()
    return results


# ---------------------------------------------------------------- the run


def _nginx_return(workdir: str, cert: str, key: str) -> tuple[nginx.NginxLayout, int]:
    """bench/tls.py's nginx (one worker, same protocols, cache and tickets), answering SMALL_BODY itself."""
    port = free_port()
    layout = nginx_tls_config(os.path.join(workdir, "nginx"), port=port, backend_port=free_port(), cert=cert,
                              key=key)
    with open(layout.conf, encoding="utf-8") as source:
        text = source.read()
    body = SMALL_BODY.decode().replace("\n", "\\n")
    text = re.sub(r"location / \{.*?\n        \}", "location / {\n            return 200 \"" + body + "\";\n        }",
                  text, flags=re.S)
    with open(layout.conf, "w", encoding="utf-8") as out:
        out.write(text)
    return layout, port


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tls_transport", description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--loads", default="resumed-1.2,resumed+request", help=f"comma-separated, from {', '.join(LOADS)}")
    add("--servers", default=",".join(SERVERS), help=f"comma-separated, from {', '.join(SERVERS)} (nginx always)")
    add("--duration", type=int, default=3)
    add("--rounds", type=int, default=3)
    add("--clients", type=int, default=2)
    add("--perf", type=int, default=0, metavar="SECONDS",
        help="after the rounds, one s_time run of SECONDS per load and server under `perf record` (bench/tls.py's "
             "split: OpenSSL, uvloop, interpreter, kernel, libc)")
    add("--micro", type=int, default=0, metavar="N",
        help="only time the per-connection steps (wrap_socket, wrap_bio, an SSLWantReadError...), N calls each")
    add("--json", default="")
    add("--serve", choices=SERVERS, help=argparse.SUPPRESS)
    add("--cert", help=argparse.SUPPRESS)
    add("--key", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        import uvloop

        uvloop.run(_serve(args.serve, args.cert, args.key))
        return 0
    if args.micro:
        folder = tempfile.mkdtemp(prefix="pyngress-bench-tls-micro-")
        try:
            cert, key, _, _ = make_certificate("ecdsa", folder)
            for name, value in micro(cert, key, args.micro).items():
                print(f"{value:8.2f} µs  {name}")
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return 0
    openssl, nginx_path = which("openssl"), which("nginx")
    if openssl is None:
        print("bench.tls_transport: openssl is not installed", file=sys.stderr)
        return 2
    loads = [n.strip() for n in args.loads.split(",") if n.strip()]
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    if "native" in servers:
        from proxy.tls.native import available

        usable, problem = available()
        if not usable:
            print(f"bench.tls_transport: no native server ({problem}; scripts/build-inplace builds it)",
                  file=sys.stderr)
            servers.remove("native")
    started_at = datetime.datetime.now()
    workdir = tempfile.mkdtemp(prefix="pyngress-bench-tls-transport-")
    os.chmod(workdir, 0o755)
    print(f"bench.tls_transport: load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} on "
          f"{os.cpu_count()} CPUs", flush=True)
    rows: list[Row] = []
    profiles: list[dict[str, Any]] = []
    group = ProcessGroup(workdir)
    try:
        cert, key, cert_pem, _ = make_certificate("ecdsa", os.path.join(workdir, "certs"))
        targets: list[Target] = []
        if nginx_path is not None:
            layout, port = _nginx_return(workdir, cert, key)
            nginx.check_config(nginx_path, layout)
            targets.append(Target("nginx", port, nginx.start(group, nginx_path, layout, name="nginx-tls", port=port)))
        for mode in servers:
            process = group.start(f"tls-{mode}", [sys.executable, "-m", "bench.tls_transport", "--serve", mode,
                                                  "--cert", cert, "--key", key], cwd=_REPO)
            targets.append(Target(mode, int(process.wait_line(_READY, timeout=30)[1]), process))
        for target in targets:
            check_server(target.port, cert_pem=cert_pem, label=target.label)
        for name in loads:
            rows += compare(openssl, targets, LOADS[name], table="ECDSA", seconds=args.duration, rounds=args.rounds,
                            clients=args.clients)
        perf = which("perf") if args.perf else None
        if args.perf and perf is None:
            print("bench.tls_transport: perf is not installed: no profile", file=sys.stderr)
        if perf is not None:
            for name in loads:
                for target in targets:
                    profiles.append(perf_profile(perf, openssl, target, LOADS[name], seconds=args.perf,
                                                 clients=args.clients, workdir=workdir))
    finally:
        group.close()
        shutil.rmtree(workdir, ignore_errors=True)
    meta: dict[str, Any] = {"command": " ".join(["python -m bench.tls_transport", *(argv or sys.argv[1:])]),
                            "started": started_at.isoformat(timespec="seconds"), "loadavg_end": os.getloadavg(),
                            "python": platform.python_version(), "openssl": ssl.OPENSSL_VERSION}
    path = args.json or os.path.join(_REPO, "bench", "results", f"tls-transport-{started_at:%Y%m%d-%H%M%S}.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as out:
        json.dump({"meta": meta, "rows": [asdict(r) for r in rows], "profiles": profiles}, out, indent=2, default=str)
    print()
    print(render(rows))
    if profiles:
        print()
        print(render_profiles(profiles))
    print("\nCPU each x ref: the server's CPU per connection against nginx's (issue #14 target <= 1.5 for resumed).")
    print(f"bench.tls_transport: results written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
