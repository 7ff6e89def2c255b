"""Runs a conformance test (tests/routing/gateway/scenario.py) end to end: every step's state served by the real
process (conformance_env.Environment), its status checks, its ports, and its cases sent by real clients to echo
pods, checked the way the upstream's CompareRoundTrip checks them.

Beyond the routing level, what only the data plane decides shows here: a slow backend answered with 504 when
the rule's timeout fires, mirror copies that the mirror backends really receive (each request carries the
upstream's `gateway-api-conformance-request-id` query parameter so its copies can be found), weighted picks
measured over requests, TLS handshakes with SNI and 421 for a Host of another listener than the SNI's (over
HTTP/1.1, and over HTTP/2 negotiated by ALPN as the upstream sends it).
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from conformance_client import Answer, Client
from conformance_env import Environment, Expected

from routing.gateway.scenario import ConformanceTest, Distribution, Request, Step
from routing.gateway.scenario import Expected as ExpectedFields
from routing.gateway.suite_grpcroute import FAILED

REQUEST_ID = "gateway-api-conformance-request-id"
CONCURRENCY = 10  # requests in flight at once, as the upstream's weight and mirror checks send them
MIRROR_REQUESTS = 200  # requests per percentage-mirror case (upstream: 500)
MIRROR_SIGMAS = 4.0  # the mirrored share's band, in binomial standard deviations (upstream: 3, over 500)
WEIGHT_ATTEMPTS = 3  # the distribution is measured again when it falls outside the tolerance (upstream: 10)
STATUS_DEADLINE = 15.0  # seconds for the status writer to publish a state (cluster mode; it waits 0.2 s for quiet)


class Runner:
    def __init__(self, env: Environment, client: Client) -> None:
        self.env = env
        self.client = client

    async def run(self, test: ConformanceTest) -> None:
        for index, step in enumerate(test.steps):
            expected = await self.env.apply(step, fresh=index == 0)
            self.env.backends.forget()
            await self._status(step)
            await self._ports(step)
            failures = await _gather([lambda case=case, expected=expected: self._case(expected, case)
                                      for case in step.cases])
            if failures:
                raise AssertionError(f"{test.name} step {index + 1}: {len(failures)} case(s) failed:\n"
                                     + "\n".join(failures))
            if step.distribution is not None:
                await self._distribution(expected, step.distribution)

    # ---- status and ports

    async def _status(self, step: Step) -> None:
        """File mode: the checks on /debug/gateways. Cluster mode: once the status writer has written what the
        build computed (the same conditions, reasons and generations, as the upstream waits for it), the checks on
        the objects in the API server."""
        if not step.status_checks:
            return
        if self.env.mode == "file":
            doc = await self.env.status_doc()
        else:
            wanted = _comparable(self.env.expected_status_doc())
            doc = {}

            async def written() -> bool:
                nonlocal doc
                doc = await self.env.status_doc()
                return _comparable(doc, like=wanted) == wanted

            await _eventually(written, "the status writer publishing the build's status", timeout=STATUS_DEADLINE,
                              last=lambda: _first_change(_comparable(doc, like=wanted), wanted))
        for check in step.status_checks:
            check(doc)

    async def _ports(self, step: Step) -> None:
        """The Gateway ports served accept connections; the others of the suite refuse them."""
        if step.ports is None:
            return
        for port in (80, 443, 8080, 8090):
            local = port + self.env.offset
            await _eventually(lambda local=local, port=port: _accepts(local, wanted=port in step.ports),
                              f"port {port} (local {local}) {'accepting' if port in step.ports else 'closed'}")

    # ---- cases

    async def _case(self, expected: Expected, case: tuple[Request, ExpectedFields]) -> str:
        """One case; "" when it passed, else what went wrong."""
        request, wanted = case
        mirrors = wanted.get("mirrors") or []
        try:
            if request.get("websocket"):
                return await self._websocket(request, wanted)
            if "grpc" in request:
                return self._compare_grpc(request, wanted, await self._send(expected, request))
            if request.get("h2c"):
                return await self._h2c(request, wanted)
            if request.get("h2"):
                return await self._h2(expected, request, wanted)
            if mirrors and any(percent < 100 for _, percent in mirrors):
                return await self._mirror_share(expected, request, wanted)
            if not mirrors:
                return self._compare(request, wanted, await self._send(expected, request))
            marker = uuid.uuid4().hex
            marked = _with_id(request, marker)
            answer = await self._send(expected, marked)
            return self._compare(marked, wanted, answer) or await self._mirrored(marker, mirrors, answer)
        except Exception as error:  # noqa: BLE001  (reported with the case)
            return f"{request} -> {type(error).__name__}: {error}"

    async def _send(self, expected: Expected, request: Request) -> Answer:
        port = request.get("port", 80)
        if "grpc" in request:
            return await self.client.grpc(local_port=port + self.env.offset, method=request["grpc"],
                                          host=request.get("host", ""), metadata=request.get("metadata"))
        host = request.get("host", "example.com")
        https = expected.scheme(port, self.env.offset) == "https"
        headers = dict(request.get("headers") or {})
        # The upstream client always sends this field (empty when the backend adds nothing).
        headers["X-Echo-Set-Header"] = ",".join(f"{k}:{v}" for k, v in (request.get("upstream_headers") or {}).items())
        sni = request.get("sni") or host.rsplit(":", 1)[0]
        ca = b""
        if https:
            ca = self._certificate_pem(expected, port, sni)
        return await self.client.send(local_port=port + self.env.offset, path=request.get("path", "/"), host=host,
                                      method=request.get("method", "GET"), headers=headers, https=https, sni=sni,
                                      ca_pem=ca)

    def _certificate_pem(self, expected: Expected, port: int, sni: str) -> bytes:
        listener = expected.config.listeners[port + self.env.offset]
        secret = listener.certificates.get(listener.host_pattern_for(sni) or "") or listener.certificates.get("")
        if secret is None:
            secret = next(iter(listener.certificates.values()))
        certificate = self.env.manifests.certificate_for(secret)
        assert certificate is not None, f"no certificate generated for Secret {secret}"
        return certificate.cert_pem

    def _compare(self, request: Request, wanted: ExpectedFields, answer: Answer) -> str:
        """The upstream's CompareRoundTrip on one answer; "" when it holds."""
        problems: list[str] = []
        status = wanted.get("status")
        backend = wanted.get("backend")
        if status is None:
            status = 200
        allowed = status if isinstance(status, tuple) else (status,)
        if answer.status not in allowed:
            return f"{_brief(request)}: status {answer.status} not in {allowed} ({answer.error or _body_hint(answer)})"
        if answer.status == 0:
            return ""
        if "location" in wanted and answer.header("Location") != wanted["location"]:
            problems.append(f"Location {answer.header('Location')!r} != {wanted['location']!r}")
        if answer.status in (200, 204):
            problems += self._compare_forwarded(request, wanted, answer, backend)
            for name, value in (wanted.get("response_headers") or {}).items():
                got = answer.header(name)
                if isinstance(value, tuple):
                    if (got or "").replace(" ", "") not in {v.replace(" ", "") for v in value}:
                        problems.append(f"response {name}: {got!r} not one of {value}")
                elif got != value:
                    problems.append(f"response {name}: {got!r} != {value!r}")
            for name in wanted.get("absent_response") or ():
                if answer.header(name) is not None:
                    problems.append(f"response {name} present: {answer.header(name)!r}")
        if answer.peer_certificate:
            served = self._served_certificates()
            if answer.peer_certificate not in served:
                problems.append("the served certificate is none of the listener's")
        return f"{_brief(request)}: " + "; ".join(problems) if problems else ""

    def _compare_forwarded(self, request: Request, wanted: ExpectedFields, answer: Answer,
                           backend: str | None) -> list[str]:
        """What the backend received (answers with 200/204)."""
        echo = answer.echo
        if backend == "":
            return [] if echo is None else [f"a backend answered ({echo['pod']}), not the proxy"]
        if echo is None:
            return [f"no backend answered: {_body_hint(answer)}"]
        problems = []
        pod = wanted.get("pod") or backend or ""
        if not echo["pod"].startswith(pod):
            problems.append(f"answered by pod {echo['pod']}, not one of {pod}")
        namespace = wanted.get("namespace") or (self.env.backends.namespace_of(pod) if pod else None)
        if namespace is not None and echo["namespace"] != namespace:
            problems.append(f"namespace {echo['namespace']} != {namespace}")
        if echo["method"] != request.get("method", "GET"):
            problems.append(f"method {echo['method']} != {request.get('method', 'GET')}")
        sent_path = request.get("path", "/")
        if "path" in wanted:
            query = urlsplit(sent_path).query
            want = wanted["path"] + (f"?{query}" if query else "")
            if echo["path"] != want:
                problems.append(f"path {echo['path']!r} != {want!r}")
        elif echo["path"] != sent_path:
            problems.append(f"path {echo['path']!r} != {sent_path!r}")
        if "backend_sni" in wanted and (echo.get("tls") or {}).get("serverName") != wanted["backend_sni"]:
            problems.append(f"backend TLS {echo.get('tls')!r}, not the server name {wanted['backend_sni']!r}")
        if "host" in wanted and echo["host"] != wanted["host"]:
            problems.append(f"host {echo['host']!r} != {wanted['host']!r}")
        headers = {name.lower(): ",".join(values) for name, values in echo["headers"].items()}
        fields = wanted.get("request_headers")
        if fields is None and "absent" not in wanted:  # the upstream's default: the request as sent
            fields = request.get("headers") or {}
        for name, value in (fields or {}).items():
            if headers.get(name.lower()) != value:
                problems.append(f"request {name}: {headers.get(name.lower())!r} != {value!r}")
        for name in wanted.get("absent") or ():
            if name.lower() in headers:
                problems.append(f"request {name} present: {headers[name.lower()]!r}")
        return problems

    def _compare_grpc(self, request: Request, wanted: ExpectedFields, answer: Answer) -> str:
        """The upstream's compareResponse for gRPC (conformance/utils/grpc): the status code, and for OK the
        method the pod served, its namespace and its name's prefix; plus the metadata the pod received
        (`request_headers`, `absent`; by default the call's own metadata)."""
        code = wanted.get("grpc_status", 0)
        if code == FAILED:  # any status but OK
            return f"{_brief(request)}: OK, not a failure" if answer.grpc_status == 0 else ""
        if answer.grpc_status != code:
            return f"{_brief(request)}: gRPC status {answer.grpc_status} != {code} ({answer.error})"
        if code != 0:
            return ""
        if answer.echo is None:
            return f"{_brief(request)}: no answer from a pod"
        method = request["grpc"]
        echo = answer.echo
        problems = []
        if not echo["path"].endswith(f"/{method}"):
            problems.append(f"the pod served {echo['path']}, not {method}")
        pod = wanted.get("pod") or wanted.get("backend") or ""
        if not echo["pod"].startswith(pod):
            problems.append(f"answered by pod {echo['pod']}, not one of {pod}")
        if "namespace" in wanted and echo["namespace"] != wanted["namespace"]:
            problems.append(f"namespace {echo['namespace']} != {wanted['namespace']}")
        headers = {name.lower(): ",".join(values) for name, values in echo["headers"].items()}
        fields = wanted.get("request_headers")
        if fields is None:
            fields = request.get("metadata") or {}
        for name, value in fields.items():
            if headers.get(name.lower()) != value:
                problems.append(f"metadata {name}: {headers.get(name.lower())!r} != {value!r}")
        for name in wanted.get("absent") or ():
            if name.lower() in headers:
                problems.append(f"metadata {name} present: {headers[name.lower()]!r}")
        return f"{_brief(request)}: " + "; ".join(problems) if problems else ""

    def _served_certificates(self) -> set[bytes]:
        return {certificate.der for certificate in self.env.manifests.certificates.values()}

    # ---- HTTP/2 cleartext from the client

    async def _h2c(self, request: Request, wanted: ExpectedFields) -> str:
        """An h2c (prior knowledge) request, compared as any other; `proto`: what the backend was spoken to in."""
        answer = await self.client.h2c(local_port=request.get("port", 80) + self.env.offset,
                                       path=request.get("path", "/"), host=request.get("host", "example.com"),
                                       headers=request.get("headers"))
        found = self._compare(request, wanted, answer)
        if not found and "proto" in wanted and (answer.echo or {}).get("proto") != wanted["proto"]:
            found = f"{_brief(request)}: the backend was spoken to in {(answer.echo or {}).get('proto')}"
        return found

    async def _h2(self, expected: Expected, request: Request, wanted: ExpectedFields) -> str:
        """An HTTP/2 request over TLS (h2 by ALPN) with the case's SNI and `:authority`, compared as any other."""
        port = request.get("port", 443)
        host = request.get("host", "example.com")
        sni = request.get("sni") or host.rsplit(":", 1)[0]
        answer = await self.client.h2(local_port=port + self.env.offset, path=request.get("path", "/"), host=host,
                                      sni=sni, ca_pem=self._certificate_pem(expected, port, sni),
                                      headers=request.get("headers"))
        return self._compare(request, wanted, answer)

    # ---- WebSocket

    async def _websocket(self, request: Request, wanted: ExpectedFields) -> str:
        marker = uuid.uuid4().hex
        path = _with_id(request, marker)["path"]
        answer = await self.client.websocket(local_port=request.get("port", 80) + self.env.offset, path=path,
                                             host=request.get("host", "example.com"))
        if not answer.websocket_echo:
            return f"{_brief(request)}: the WebSocket messages did not come back"
        pods = [pod.name for pod in self.env.backends.pods.values() if pod.received(marker)]
        backend = wanted.get("backend") or ""
        if not pods or not all(name.startswith(backend) for name in pods):
            return f"{_brief(request)}: the WebSocket reached {pods}, not {backend}"
        return ""

    # ---- mirrors

    async def _mirrored(self, marker: str, mirrors: list[tuple[str, float]], answer: Answer) -> str:
        """Every mirror backend receives the copy (polled: copies go out after the request, answers ignored), with
        the path the primary backend received."""
        assert answer.echo is not None
        primary = answer.echo["path"]
        for service, _ in mirrors:
            pods = self.env.backends.of_service(service)

            def copies(pods: list = pods) -> list:
                return [item for pod in pods for item in pod.received(marker)]

            await _eventually(lambda copies=copies: copies(), f"a copy mirrored to {service}")
            if any(item.uri != primary for item in copies()):
                return f"{service} received {[item.uri for item in copies()]}, the backend {primary!r}"
        return ""

    async def _mirror_share(self, expected: Expected, request: Request, wanted: ExpectedFields) -> str:
        """A percentage mirror: the first request as the upstream asserts it, then a batch whose copies are counted
        at the mirror backend: within MIRROR_SIGMAS binomial standard deviations of the percentage."""
        first = uuid.uuid4().hex
        problem = self._compare(_with_id(request, first), wanted, await self._send(expected, _with_id(request, first)))
        if problem:
            return problem
        batch = uuid.uuid4().hex
        statuses = await _bounded([
            lambda i=i: self._send(expected, _with_id(request, f"{batch}-{i}")) for i in range(MIRROR_REQUESTS)])
        bad = [answer.status for answer in statuses if answer.status != 200]
        if bad:
            return f"{_brief(request)}: {len(bad)} of the batch answered {Counter(bad)}"
        for service, percent in wanted["mirrors"]:
            pods = self.env.backends.of_service(service)
            counted = await _settled(lambda pods=pods: sum(len(pod.received(batch)) for pod in pods))
            share = percent / 100
            margin = MIRROR_SIGMAS * math.sqrt(MIRROR_REQUESTS * share * (1 - share))
            low, high = MIRROR_REQUESTS * share - margin, MIRROR_REQUESTS * share + margin
            if not low <= counted <= high:
                return (f"{_brief(request)}: {counted} of {MIRROR_REQUESTS} mirrored to {service}, "
                        f"outside [{low:.0f}, {high:.0f}] for {percent}%")
        return ""

    # ---- weights

    async def _distribution(self, expected: Expected, distribution: Distribution) -> None:
        """The upstream's weight checks: each request answered by a pod of a backend with weight; with a tolerance,
        each backend's share within it (measured again up to WEIGHT_ATTEMPTS times: it is a sample); with a header,
        the header a backend's filter sets names the backend whose pod answered."""
        last = ""
        for _ in range(WEIGHT_ATTEMPTS):
            answers = await _bounded([lambda: self._send(expected, distribution.request)
                                      for _ in range(distribution.requests)])
            seen: Counter[str] = Counter()
            for answer in answers:
                assert answer.status == 200 and answer.echo is not None and answer.grpc_status in (None, 0), (
                    answer.status, answer.grpc_status, answer.error, _body_hint(answer))
                pod = answer.echo["pod"]
                backend = pod.rsplit("-", 2)[0]  # the upstream's extractBackendName
                assert backend in distribution.weights, f"answered by unexpected pod {pod}"
                if distribution.header:
                    values = answer.echo["headers"].get(distribution.header) or []
                    assert len(values) == 1 and pod.startswith(values[0]), (pod, values)
                seen[backend] += 1
            if distribution.tolerance is None:
                return
            active = {name for name, weight in distribution.weights.items() if weight > 0}
            shares = {name: seen[name] / distribution.requests for name in distribution.weights}
            if set(seen) == active and all(abs(shares[name] - weight) <= distribution.tolerance
                                           for name, weight in distribution.weights.items()):
                return
            last = f"shares {shares} vs weights {distribution.weights} (tolerance {distribution.tolerance})"
        raise AssertionError(f"weighted distribution off in {WEIGHT_ATTEMPTS} attempts: {last}")


# ---------------------------------------------------------------------------------------------- helpers


def _with_id(request: Request, marker: str) -> Request:
    """The request with the upstream's request id query parameter (found again in mirror copies)."""
    path = request.get("path", "/")
    separator = "&" if "?" in path else "?"
    return {**request, "path": f"{path}{separator}{REQUEST_ID}={marker}"}


def _brief(request: Request) -> str:
    shown = {k: v for k, v in request.items()
             if k in ("method", "host", "port", "sni", "path", "grpc", "metadata", "h2")}
    return str(shown)


def _body_hint(answer: Answer) -> str:
    if answer.echo is not None:
        return f"pod {answer.echo['pod']}"
    return f"status {answer.status}"


async def _accepts(port: int, *, wanted: bool) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return not wanted
    writer.close()
    await writer.wait_closed()
    return wanted


async def _eventually(check: Callable[[], Any], what: str, *, timeout: float = 10.0,
                      last: Callable[[], str] | None = None) -> None:
    try:
        async with asyncio.timeout(timeout):
            while True:
                found = check()
                if asyncio.iscoroutine(found):
                    found = await found
                if found:
                    return
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"not within {timeout}s: {what}" + (f"; {last()}" if last else "")) from None


def _comparable(doc: dict[str, Any], *, like: dict[str, Any] | None = None) -> dict[str, Any]:
    """A status document without what only the API server's copy has (lastTransitionTime, addresses); with `like`,
    only the objects `like` names, plus every other route that has entries of ours (which it must not)."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in ("lastTransitionTime", "addresses")}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    found = {k: v for k, v in strip(doc).items()
             if k in ("gatewayClasses", "gateways", "httpRoutes", "grpcRoutes", "backendTLSPolicies")}
    if like is not None:
        # lists of entries of ours, on objects of every controller
        shared = ("httpRoutes", "grpcRoutes", "backendTLSPolicies")
        ours = {field: {k: v for k, v in (found.get(field) or {}).items() if k in like.get(field, {}) or v}
                for field in shared}
        found = {
            "gatewayClasses": {k: found["gatewayClasses"].get(k) for k in like["gatewayClasses"]},
            "gateways": {k: found["gateways"].get(k) for k in like["gateways"]},
            # (a kind the build has no entries of is left out unless entries of ours were written)
            **{field: entries for field, entries in ours.items() if field in like or entries},
        }
        for field in shared:
            for key in like.get(field, {}):
                found[field].setdefault(key, None)
    return found


def _first_change(got: Any, wanted: Any, where: str = "") -> str:
    if isinstance(got, dict) and isinstance(wanted, dict):
        for key in sorted(got.keys() | wanted.keys()):
            if got.get(key) != wanted.get(key):
                return _first_change(got.get(key), wanted.get(key), f"{where}/{key}")
    return f"{where}: written {got!r:.300} != built {wanted!r:.300}"


async def _settled(count: Callable[[], int], *, quiet: float = 0.5, timeout: float = 10.0) -> int:
    """A count that stopped growing: the same for `quiet` seconds (copies of a finished batch arrive within
    milliseconds; this bounds the wait for stragglers), or its value after `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    value, since = count(), loop.time()
    while loop.time() < deadline:
        await asyncio.sleep(0.05)
        now = count()
        if now != value:
            value, since = now, loop.time()
        elif loop.time() - since >= quiet:
            break
    return value


async def _bounded(jobs: list[Callable[[], Awaitable[Any]]]) -> list[Any]:
    """Run the jobs CONCURRENCY at a time; their results in order."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(job: Callable[[], Awaitable[Any]]) -> Any:
        async with gate:
            return await job()

    return list(await asyncio.gather(*(one(job) for job in jobs)))


async def _gather(jobs: list[Callable[[], Awaitable[str]]]) -> list[str]:
    return [problem for problem in await _bounded(jobs) if problem]
