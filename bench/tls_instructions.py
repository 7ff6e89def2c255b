"""`python -m bench.tls_instructions`: instructions per resumed TLS connection, counted by callgrind (issue #14).

bench.tls measures CPU per handshake against nginx with `openssl s_time`, but on a shared two-core box that figure
moves ±15% from run to run; this one counts what the pyngress process executes (valgrind's callgrind, as
bench.instructions does for requests), so a change to the per-connection path can be compared before and after.

pyngress serves bench.tls's certificate and manifests (file mode, `--tls-transport`, access log off) under
callgrind; a Python client (its cost is not counted) warms the server up, the counters are zeroed, then it makes
`--connections` connections one after the other, as s_time does:

* resumed-1.2: a TLS 1.2 abbreviated handshake with the previous connection's session (ticket), then the socket
  is closed without close_notify (s_time sets the shutdown flags and closes the socket);
* resumed+request: a resumed TLS 1.3 handshake, one HTTP/1.0 request proxied to bench/backend.py, the answer
  read to the end (the server closes).

The figure is the process's instructions (Python, C extensions, OpenSSL, the system call interface) divided by
the connections. `--baseline REV` counts a git revision's tree too (built in place first there, for a compiled
run: scripts/build-inplace in that checkout).
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import ssl
import subprocess
import sys
import tempfile
from collections.abc import Sequence

from bench.processes import ProcessGroup, free_port, start_python_backend, which
from bench.tls import HOST, REQUEST, SECRET_NAME, SECRET_NAMESPACE, make_certificate, write_pyngress_manifests

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_LISTENING = re.compile(r"pyngress listening http=\S+ .*\bhttps=[^:\s]+:(?P<https>\d+)")
_TOTAL = re.compile(r"^summary:\s+(\d+)", re.MULTILINE)
LOADS = ("resumed-1.2", "resumed+request")
WARMUP = 100


class Client:
    """Connections one after the other, each resuming the previous one's session (no SNI, as s_time)."""

    def __init__(self, port: int, load: str) -> None:
        self.port = port
        self.load = load
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        if load == "resumed-1.2":
            context.maximum_version = ssl.TLSVersion.TLSv1_2
        else:
            context.minimum_version = ssl.TLSVersion.TLSv1_3
        self.context = context
        self.session: ssl.SSLSession | None = None
        self.resumed = 0

    def connect(self) -> None:
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=120)
        tls = self.context.wrap_socket(raw, session=self.session)
        try:
            self.resumed += tls.session_reused
            if self.load == "resumed+request":
                tls.sendall(REQUEST)
                answer = b""
                while chunk := tls.recv(65536):
                    answer += chunk
                if not answer.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(f"the request was answered {answer[:40]!r}")
            self.session = tls.session
        finally:
            tls.close()  # no close_notify (SSLSocket.close does not call SSL_shutdown)

    def run(self, count: int) -> int:
        self.resumed = 0
        for _ in range(count):
            self.connect()
        return self.resumed


def count(group: ProcessGroup, *, tree: str, folder: str, load: str, connections: int, transport: str,
          workdir: str, name: str, pure: bool) -> float:
    """Instructions per connection of one pyngress (from `tree`) under callgrind."""
    out = os.path.join(workdir, f"callgrind.{name}.out")
    argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, "-m", "proxy",
            "--manifests", folder, "--bind", "127.0.0.1", "--http-port", "0", "--https-port", str(free_port()),
            "--admin-port", "0", "--no-access-log", "--log-level", "warning", "--tls-transport", transport,
            "--default-ssl-certificate", f"{SECRET_NAMESPACE}/{SECRET_NAME}"]
    env = {**os.environ, "PYTHONPATH": tree}
    env.pop("PYNGRESS_NO_EXTENSIONS", None)
    if pure:
        env["PYNGRESS_NO_EXTENSIONS"] = "1"
    process = group.start(name, argv, env=env, cwd=tree)
    try:
        port = int(process.wait_line(_LISTENING, timeout=1200)["https"])
        client = Client(port, load)
        client.run(WARMUP)
        subprocess.run(["callgrind_control", "-z", str(process.pid)], check=True, capture_output=True, timeout=60)
        resumed = client.run(connections)
        subprocess.run(["callgrind_control", "-d", str(process.pid)], check=True, capture_output=True, timeout=120)
    finally:
        group.stop(process)
    if resumed != connections:
        raise RuntimeError(f"{name}: {resumed} of {connections} connections resumed")
    totals = []
    for file in os.listdir(workdir):
        if file.startswith(os.path.basename(out) + "."):
            with open(os.path.join(workdir, file), encoding="utf-8", errors="replace") as dump:
                found = _TOTAL.search(dump.read())
            if found:
                totals.append(int(found.group(1)))
    if not totals:
        raise RuntimeError(f"{name}: callgrind wrote no counts")
    return min(totals) / connections


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tls_instructions", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loads", default=",".join(LOADS), help=f"comma-separated, from {', '.join(LOADS)}")
    parser.add_argument("--connections", type=int, default=500, help="connections counted per case")
    parser.add_argument("--transports", default="native", help="comma-separated --tls-transport values")
    parser.add_argument("--baseline", default="", help="also count this git revision's tree (a worktree of it)")
    parser.add_argument("--baseline-tree", default="", help="also count this source tree (built as it is)")
    parser.add_argument("--pure", action="store_true", help="PYNGRESS_NO_EXTENSIONS=1 (the asyncio path only)")
    parser.add_argument("--keep-dumps", default="", help="copy the callgrind dumps to this folder")
    args = parser.parse_args(argv)
    loads = [load for load in args.loads.split(",") if load]
    for load in loads:
        if load not in LOADS:
            parser.error(f"unknown load {load!r}")
    if which("valgrind") is None or which("callgrind_control") is None:
        print("bench.tls_instructions: valgrind is not installed", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="pyngress-tls-instructions-") as workdir:
        trees = [("this tree", _REPO)]
        if args.baseline:
            folder = os.path.join(workdir, "baseline")
            subprocess.run(["git", "-C", _REPO, "worktree", "add", "--detach", folder, args.baseline], check=True,
                           capture_output=True, timeout=120)
            trees.insert(0, (f"baseline {args.baseline}", folder))
        if args.baseline_tree:
            trees.insert(0, (f"baseline {args.baseline_tree}", args.baseline_tree))
        group = ProcessGroup(workdir)
        results: list[tuple[str, str, str, float]] = []
        try:
            [backend_port] = start_python_backend(group)
            _cert, _key, cert_pem, key_pem = make_certificate("ecdsa", os.path.join(workdir, "certs"))
            folder = os.path.join(workdir, "manifests")
            write_pyngress_manifests(folder, backend=[("127.0.0.1", backend_port)], cert_pem=cert_pem,
                                     key_pem=key_pem)
            for load in loads:
                for transport in args.transports.split(","):
                    for label, tree in trees:
                        name = f"{load}.{transport}.{len(results)}"
                        per = count(group, tree=tree, folder=folder, load=load, connections=args.connections,
                                    transport=transport, workdir=workdir, name=name, pure=args.pure)
                        print(f"{load} {transport} {label}: {per:,.0f} instructions per connection", flush=True)
                        results.append((load, transport, label, per))
            if args.keep_dumps:
                os.makedirs(args.keep_dumps, exist_ok=True)
                for file in os.listdir(workdir):
                    if file.startswith("callgrind."):
                        subprocess.run(["cp", os.path.join(workdir, file), args.keep_dumps], check=True)
        finally:
            group.close()
            if args.baseline:
                subprocess.run(["git", "-C", _REPO, "worktree", "remove", "--force", os.path.join(workdir, "baseline")],
                               check=False, capture_output=True, timeout=120)
    print(f"\ninstructions per connection (callgrind, {args.connections} connections each, {HOST})")
    for load, transport, label, per in results:
        print(f"  {load:16} {transport:8} {label:30} {per:12,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
