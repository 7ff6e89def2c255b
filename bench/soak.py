"""`python -m bench.soak`: memory across many configuration publishes (the GC freeze's leak check).

pyngress freezes every live object out of the cyclic GC's reach after publishes (see
proxy.server.ProxyServer._freeze); cyclic garbage alive at such a moment would never be freed.
This runs a real pyngress in file mode on loopback, publishes `--publishes` new tables (a new
Ingress host and path each time, each one waited for until it serves), scrapes /metrics and
/debug/routes in between, and prints the RSS every `--every` publishes: it should stay flat.
Bounded: every wait has a deadline, the whole run stops after `--max-seconds`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence

from bench import manifests
from bench.client import HttpConnection
from bench.processes import ProcessGroup, read_status_kib, start_pyngress, start_python_backend


def _ingress(index: int) -> dict:
    path = {"path": f"/soak{index}", "pathType": "Prefix",
            "backend": {"service": {"name": manifests.MAIN_SERVICE, "port": {"name": manifests.PORT_NAME}}}}
    return manifests.ingress("soak", [(f"soak{index}.local", [path])])


def _get(port: int, path: str, host: str) -> int:
    connection = HttpConnection("127.0.0.1", port, timeout=5)
    try:
        status, _ = connection.request("GET", path, host=host)
        return status
    finally:
        connection.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--publishes", type=int, default=600)
    parser.add_argument("--every", type=int, default=100, help="print the RSS every N publishes")
    parser.add_argument("--max-seconds", type=float, default=300.0)
    args = parser.parse_args(argv)

    workdir = tempfile.mkdtemp(prefix="pyngress-soak-")
    group = ProcessGroup(workdir)
    started = time.monotonic()
    try:
        [port] = start_python_backend(group)
        folder = os.path.join(workdir, "manifests")
        manifests.write_folder(folder, manifests.objects(None, backend=[("127.0.0.1", port)]))
        process, address, _ = start_pyngress(group, manifests=folder, extra=("--log-level", "warning"))
        rows = [(0, (read_status_kib(process.pid) or 0) // 1024)]
        print(f"soak: 0 publishes, RSS {rows[0][1]} MiB", flush=True)
        for index in range(1, args.publishes + 1):
            if time.monotonic() - started > args.max_seconds:
                print(f"soak: stopped after {args.max_seconds:g} s", flush=True)
                break
            target = os.path.join(folder, "soak.json")
            with open(target + ".tmp", "w", encoding="utf-8") as out:
                json.dump(_ingress(index), out)
            os.replace(target + ".tmp", target)
            deadline = time.monotonic() + 10
            while _get(address.http_port, f"/soak{index}", f"soak{index}.local") != 200:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"publish {index} not served within 10 s")
                time.sleep(0.005)
            for path in ("/metrics", "/debug/routes"):
                _get(address.admin_port, path, "admin")
            if index % args.every == 0:
                time.sleep(1.5)  # the deferred GC freeze runs about a second after a publish
                rows.append((index, (read_status_kib(process.pid) or 0) // 1024))
                print(f"soak: {index} publishes, RSS {rows[-1][1]} MiB", flush=True)
        growth = rows[-1][1] - rows[0][1]
        print(f"soak: RSS {rows[0][1]} -> {rows[-1][1]} MiB over {rows[-1][0]} publishes ({growth:+d} MiB)")
        return 0
    finally:
        group.close()


if __name__ == "__main__":
    sys.exit(main())
