"""Helpers for end-to-end tests: the real `pyngress` process, echo "pods" on 127.0.0.x, manifests on disk.

Reusable by any e2e test: `conftest.py` in this folder turns them into fixtures
(`echo_pods`, `pyngress`, `manifests`).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parents[2]
# Generous: the CI box has two cores shared with other tests.
START_TIMEOUT = 30.0
DEADLINE = 15.0


async def eventually(check: Callable[[], Any], *, timeout: float = DEADLINE, interval: float = 0.05) -> Any:
    """Call `check` (sync or async) until it returns something truthy; fail after `timeout` with its last value."""
    last: Any = None
    try:
        async with asyncio.timeout(timeout):
            while True:
                last = check()
                if asyncio.iscoroutine(last):
                    last = await last
                if last:
                    return last
                await asyncio.sleep(interval)
    except TimeoutError:
        raise AssertionError(f"condition not met within {timeout}s; last value: {last!r}") from None


# ---------------------------------------------------------------------------------------------- pods

class EchoPod:
    """An HTTP server standing in for a pod: answers JSON naming itself, the path and the headers.

    `/slow?seconds=N` answers after N seconds (for drain tests); `started` is set when such a
    request has arrived. `?respond-header=Name:value` (repeatable) adds fields to the answer.
    `/healthz` answers `health` (a status a test sets) and counts in `health_checks`; every other
    request is answered with `status` (200 unless a test makes the pod fail).
    """

    def __init__(self, name: str, address: str) -> None:
        self.name = name
        self.address = address
        self.port = 0
        self.requests = 0
        self.health = 200
        self.health_checks = 0
        self.status = 200
        self.slow_started = asyncio.Event()
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None

    async def start(self, port: int = 0) -> EchoPod:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._answer)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.address, port).start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        self._stopping.set()  # slow requests answer now instead of holding up the shutdown
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _answer(self, request: web.Request) -> web.Response:
        if request.path == "/healthz":
            self.health_checks += 1
            return web.Response(status=self.health, text="health")
        self.requests += 1
        body = await request.read()
        if request.path.endswith("/slow"):
            self.slow_started.set()
            try:
                await asyncio.wait_for(self._stopping.wait(), float(request.query.get("seconds", "1")))
            except TimeoutError:
                pass
        extra = [item.partition(":") for item in request.query.getall("respond-header", [])]
        return web.json_response(status=self.status, headers={name: value for name, _, value in extra}, data={
            "pod": self.name,
            "address": f"{self.address}:{self.port}",
            "method": request.method,
            "path": request.raw_path.split("?", 1)[0],
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "body": body.decode(errors="replace"),
        })


class Pods:
    """Starts echo pods and stops them all at the end of a test."""

    def __init__(self) -> None:
        self.started: list[EchoPod] = []

    async def start(self, name: str, address: str, port: int = 0) -> EchoPod:
        pod = await EchoPod(name, address).start(port)
        self.started.append(pod)
        return pod

    async def replicas(self, *wanted: tuple[str, str]) -> list[EchoPod]:
        """Pods of one Service, (name, address) each, all on one port: an EndpointSlice lists one port."""
        for _ in range(20):
            first = await self.start(*wanted[0])
            try:
                rest = [await self.start(name, address, first.port) for name, address in wanted[1:]]
            except OSError:  # that port is taken on another address: try another one
                continue
            return [first, *rest]
        raise AssertionError("no common free port for the replicas")

    async def stop_all(self) -> None:
        for pod in self.started:
            await pod.stop()
        self.started.clear()


# ---------------------------------------------------------------------------------------------- manifests

def service(name: str, *, namespace: str = "default", port: int = 80, port_name: str = "http",
            pods: list[EchoPod] | tuple[EchoPod, ...] = ()) -> list[dict]:
    """A Service with one port and the EndpointSlice listing `pods` (which must share one port number)."""
    target = pods[0].port if pods else 8080
    assert all(p.port == target for p in pods), "pods of one service must listen on the same port"
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
           "spec": {"ports": [{"name": port_name, "port": port, "targetPort": target}]}}
    eps = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
           "metadata": {"name": f"{name}-slice", "namespace": namespace,
                        "labels": {"kubernetes.io/service-name": name}},
           "addressType": "IPv4",
           "endpoints": [{"addresses": [p.address], "conditions": {"ready": True}} for p in pods],
           "ports": [{"name": port_name, "port": target, "protocol": "TCP"}]}
    return [svc, eps]


def ingress(name: str, *, host: str | None = None, paths: list[tuple[str, str, str, int]],
            namespace: str = "default", ingress_class: str | None = "pyngress") -> dict:
    """An Ingress with one rule; `paths` holds (path, pathType, service, service port)."""
    rule: dict[str, Any] = {"http": {"paths": [
        {"path": path, "pathType": path_type,
         "backend": {"service": {"name": svc, "port": {"number": port}}}}
        for path, path_type, svc, port in paths]}}
    if host:
        rule["host"] = host
    spec: dict[str, Any] = {"rules": [rule]}
    if ingress_class:
        spec["ingressClassName"] = ingress_class
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


INGRESS_CLASS = {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                 "metadata": {"name": "pyngress"}, "spec": {"controller": "pyngress.dev/ingress-controller"}}


class ManifestDir:
    """A folder of manifest files; `write()` replaces a file atomically, as editors and kubectl cp do."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)

    def write(self, name: str, objects: list[dict] | dict | str) -> Path:
        if isinstance(objects, dict):
            objects = [objects]
        text = objects if isinstance(objects, str) else "---\n".join(json.dumps(o, indent=1) + "\n" for o in objects)
        target = self.path / name
        tmp = self.path / f".{name}.tmp"
        tmp.write_text(text)
        os.replace(tmp, target)
        return target

    def remove(self, name: str) -> None:
        (self.path / name).unlink()


# ---------------------------------------------------------------------------------------------- the process

LISTENING = re.compile(r"^pyngress listening (.*)$")
ADMIN = re.compile(r"^pyngress (admin=\S+)$")


@dataclass
class Pyngress:
    """A running `python -m proxy` process and the ports it printed."""

    process: asyncio.subprocess.Process
    log_path: Path
    ports: dict[str, int] = field(default_factory=dict)
    session: aiohttp.ClientSession | None = None
    # stdout after the "listening" line (the access log), read continuously so the pipe never fills.
    stdout_lines: list[str] = field(default_factory=list)
    _reader: asyncio.Task[None] | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.ports['http']}"

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.ports['admin']}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def request(self, path: str, *, host: str | None = None, method: str = "GET",
                      timeout: float = DEADLINE, **kwargs: Any) -> tuple[int, Any]:
        """One request through the proxy; returns (status, JSON body or text)."""
        headers = dict(kwargs.pop("headers", {}))
        if host is not None:
            headers["Host"] = host
        return await self._fetch(method, self.http + path, headers=headers, timeout=timeout, **kwargs)

    async def admin_get(self, path: str, *, timeout: float = DEADLINE) -> tuple[int, Any]:
        return await self._fetch("GET", self.admin + path, headers={}, timeout=timeout)

    async def _fetch(self, method: str, url: str, *, headers: dict[str, str], timeout: float,
                     **kwargs: Any) -> tuple[int, Any]:
        if self.session is None:
            # A fresh connection per request: keep-alive reuse across config changes is the server's business.
            self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))
        async with self.session.request(method, url, headers=headers, allow_redirects=False,
                                        timeout=aiohttp.ClientTimeout(total=timeout), **kwargs) as response:
            text = await response.text()
            if response.content_type == "application/json":
                return response.status, json.loads(text)
            return response.status, text

    async def generation(self) -> int:
        status, body = await self.admin_get("/debug/routes")
        assert status == 200, body
        return body["generation"]

    async def read_ports(self, pattern: re.Pattern[str] = LISTENING, *, timeout: float = START_TIMEOUT) -> None:
        """Read stdout up to the line `pattern` matches and take the ports it lists."""
        assert self.process.stdout is not None
        try:
            async with asyncio.timeout(timeout):
                while True:
                    raw = await self.process.stdout.readline()
                    if not raw:
                        code = await self.process.wait()
                        raise AssertionError(f"pyngress exited with {code} before printing its ports:\n{self.log()}")
                    found = pattern.match(raw.decode().strip())
                    if found:
                        for part in found.group(1).split():
                            name, _, address = part.partition("=")
                            self.ports[name] = int(address.rsplit(":", 1)[1])
                        if pattern is LISTENING and self._reader is None:
                            self._reader = asyncio.create_task(self._read_stdout())
                        return
        except TimeoutError:
            raise AssertionError(f"pyngress did not print its ports within {timeout}s:\n{self.log()}") from None

    async def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        while raw := await self.process.stdout.readline():
            if len(self.stdout_lines) < 100_000:
                self.stdout_lines.append(raw.decode(errors="replace"))

    async def access_log(self, count: int, *, timeout: float = DEADLINE) -> list[dict[str, Any]]:
        """The first `count` access log records (JSON lines on stdout), waiting for them to be written."""
        async with asyncio.timeout(timeout):
            while True:
                records = [json.loads(line) for line in self.stdout_lines if line.startswith("{")]
                if len(records) >= count:
                    return records
                await asyncio.sleep(0.02)

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.process.send_signal(sig)

    async def wait(self, timeout: float = DEADLINE) -> int:
        async with asyncio.timeout(timeout):
            return await self.process.wait()

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await self.wait(timeout=DEADLINE)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self._reader is not None:
            try:
                async with asyncio.timeout(DEADLINE):
                    await self._reader
            except TimeoutError:
                self._reader.cancel()


async def start_pyngress(manifests: Path | list[Path] | None, *args: str, log_path: Path,
                         timeout: float = START_TIMEOUT, admin_only: bool = False,
                         env: dict[str, str] | None = None) -> Pyngress:
    """Start `python -m proxy` on ephemeral loopback ports and wait for its "listening" line.

    `admin_only`: return as soon as the admin port is known (before the first configuration);
    `await proc.read_ports()` later waits for the listeners. `manifests=None` is cluster mode.
    `env`: extra environment variables for the process.
    """
    paths = [] if manifests is None else manifests if isinstance(manifests, list) else [manifests]
    command = [sys.executable, "-m", "proxy", "--bind", "127.0.0.1", "--http-port", "0", "--https-port", "0",
               "--admin-port", "0", "--log-level", "debug"]
    for path in paths:
        command += ["--manifests", str(path)]
    if os.environ.get("PYNGRESS_TEST_TLS_TRANSPORT"):
        # Runs the TLS suites on one transport (`PYNGRESS_TEST_TLS_TRANSPORT=asyncio`, or `native` after
        # build-inplace; `auto`, the default, is what runs without it).
        command += ["--tls-transport", os.environ["PYNGRESS_TEST_TLS_TRANSPORT"]]
    command += list(args)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost", **(env or {})}
    log_file = open(log_path, "wb")  # noqa: SIM115  (the child writes into it for its whole life)
    try:
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=log_file, stdin=asyncio.subprocess.DEVNULL,
            cwd=ROOT, env=env)
    finally:
        log_file.close()
    proc = Pyngress(process=process, log_path=log_path)
    try:
        await proc.read_ports(ADMIN if admin_only else LISTENING, timeout=timeout)
    except AssertionError:
        await proc.close()
        raise
    return proc


# ---------------------------------------------------------------------------------------------- cluster mode

def kubeconfig(path: Path, url: str) -> Path:
    """A kubeconfig pointing at the API emulator (plain HTTP, a dummy token)."""
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "emulator",
        "clusters": [{"name": "emulator", "cluster": {"server": url}}],
        "users": [{"name": "me", "user": {"token": "t"}}],
        "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "me"}}],
    }))  # JSON is YAML
    return path


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text (`name` as exposed, e.g. "pyngress_watch_errors_total")."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return None


async def scrape(proc: Pyngress, name: str, **labels: str) -> float | None:
    """One metric of a running process, read from its /metrics."""
    status, text = await proc.admin_get("/metrics")
    assert status == 200, text
    return metric(text, name, **labels)


class ClusterProcesses:
    """Starts pyngress processes in cluster mode against one emulator; all are stopped at the end."""

    def __init__(self, api_url: str, tmp_path: Path) -> None:
        self.config = kubeconfig(tmp_path / "kubeconfig", api_url)
        self.tmp_path = tmp_path
        self.started: list[Pyngress] = []

    async def start(self, *args: str, env: dict[str, str] | None = None, admin_only: bool = False,
                    timeout: float = START_TIMEOUT) -> Pyngress:
        proc = await start_pyngress(None, "--kubeconfig", str(self.config), *args, admin_only=admin_only, env=env,
                                    log_path=self.tmp_path / f"pyngress-cluster-{len(self.started)}.log",
                                    timeout=timeout)
        self.started.append(proc)
        return proc

    async def close(self) -> None:
        for proc in self.started:
            await proc.close()
