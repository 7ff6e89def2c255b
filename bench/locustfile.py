"""Locust load through pyngress: many hosts and paths, mixed response and upload sizes.

    locust -f bench/locustfile.py --host http://127.0.0.1:8080

`--host` is where locust connects (pyngress's HTTP port); the Host header of each request is
picked from the host list below, so one pyngress listener is exercised with many virtual hosts.
Without settings, the requests match the manifests `python -m bench.manifests DIR --backend ...
--ingresses 100` writes (and the bench backends: `/64k` is 64 KiB, `POST /upload` is read, any
other path is 100 bytes). Environment variables (weights are relative, default 1):

  PYNGRESS_LOCUST_HOSTS    "host[=weight],..."    e.g. "demo.local=3,api.local"
  PYNGRESS_LOCUST_PATHS    "path[=weight],..."    e.g. "/=8,/api/v1/items=2,/64k=1"
                           (used with every host of PYNGRESS_LOCUST_HOSTS; without HOSTS, paths of
                           the generated set below)
  PYNGRESS_LOCUST_INGRESSES   generated set: table size the manifests were written with (default 100)
  PYNGRESS_LOCUST_UPLOAD      "bytes=weight" for POST /upload, e.g. "1048576=1" (default "65536=1"; "0" off)
  PYNGRESS_LOCUST_WAIT        max think time in seconds between requests (default 0: closed loop)
"""

from __future__ import annotations

import itertools
import os
import random
from dataclasses import dataclass

from locust import FastHttpUser, between, constant, task  # type: ignore[import-not-found, unused-ignore]

try:  # the generated set follows bench/manifests.py when run from the repository
    from bench.manifests import MAIN_HOST, TableShape, table_requests
except ImportError:  # locustfile copied elsewhere: fall back to one host
    MAIN_HOST = "bench.local"
    TableShape = None  # type: ignore[assignment,misc]
    table_requests = None  # type: ignore[assignment]


@dataclass(frozen=True)
class Call:
    method: str
    host: str
    path: str
    body: bytes
    name: str  # the stats line (grouped by kind, not one line per URL)


def _weighted(text: str) -> list[tuple[str, float]]:
    items = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        value, _, weight = part.rpartition("=") if "=" in part else (part, "", "1")
        items.append((value, float(weight)))
    return items


def _calls() -> tuple[list[Call], list[float]]:
    calls: list[Call] = []
    weights: list[float] = []
    hosts = _weighted(os.environ.get("PYNGRESS_LOCUST_HOSTS", ""))
    paths = _weighted(os.environ.get("PYNGRESS_LOCUST_PATHS", ""))
    if hosts:
        for host, host_weight in hosts:
            for path, path_weight in paths or [("/", 1.0)]:
                calls.append(Call("GET", host, path, b"", f"GET {path}"))
                weights.append(host_weight * path_weight)
    else:
        ingresses = int(os.environ.get("PYNGRESS_LOCUST_INGRESSES", "100"))
        if table_requests is not None and ingresses > 0:
            pairs = table_requests(TableShape(ingresses=ingresses), count=min(1000, ingresses * 2))
            for host, path in pairs:  # 100-byte answers over many hosts; 80% of the traffic
                calls.append(Call("GET", host, path, b"", "GET table (100 B)"))
                weights.append(80.0 / len(pairs))
        calls.append(Call("GET", MAIN_HOST, "/small", b"", "GET /small (100 B)"))
        weights.append(5.0)
        calls.append(Call("GET", MAIN_HOST, "/64k", b"", "GET /64k (64 KiB)"))
        weights.append(15.0)
        for path, weight in paths:
            calls.append(Call("GET", MAIN_HOST, path, b"", f"GET {path}"))
            weights.append(weight)
    upload = os.environ.get("PYNGRESS_LOCUST_UPLOAD", "65536=1")
    for size, weight in _weighted(upload):
        if int(size) > 0:
            host = hosts[0][0] if hosts else MAIN_HOST
            calls.append(Call("POST", host, "/upload", b"x" * int(size), f"POST /upload ({int(size)} B)"))
            weights.append(weight)
    return calls, weights


CALLS, WEIGHTS = _calls()
_CUMULATIVE = list(itertools.accumulate(WEIGHTS))
_WAIT = float(os.environ.get("PYNGRESS_LOCUST_WAIT", "0"))


class IngressUser(FastHttpUser):
    """One keep-alive client sending a weighted mix of hosts, paths and sizes."""

    wait_time = between(0, _WAIT) if _WAIT > 0 else constant(0)

    @task
    def request(self) -> None:
        call = random.choices(CALLS, cum_weights=_CUMULATIVE)[0]
        self.client.request(call.method, call.path, headers={"Host": call.host}, data=call.body or None,
                            name=call.name)
