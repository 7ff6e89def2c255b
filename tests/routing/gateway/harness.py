"""Requests through a built Config, at the routing level: what the data plane would do with the rules.

`send` plays one request the way the data plane runs a rule: the listener's table (by local port),
the route (host, path, method, headers, query), the rule's request filters (an Answer ends it), the
weighted pick, the backend's filters, the upstream's response, then the response filters (backend's,
then the rule's; also on answers the proxy made). `FakeRequest` and `FakeResponse` implement
proxy/routing/request.py's protocols with plain lists of header fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from proxy.objects import Snapshot
from proxy.routing.build import build
from proxy.routing.filters import Mirror
from proxy.routing.model import Config, Route, Timeouts
from proxy.routing.paths import normalize_path
from proxy.routing.policies import BackendTLS
from proxy.routing.table import normalize_host
from proxy.settings import Settings

from .objects import snapshot


class _Fields:
    """Header fields in order, names as written; lookups ignore case."""

    def __init__(self, fields: dict[str, str] | None = None) -> None:
        self.fields: list[tuple[bytes, bytes]] = [(k.encode(), v.encode()) for k, v in (fields or {}).items()]

    def header(self, name: bytes) -> bytes | None:
        found = [value for key, value in self.fields if key.lower() == name.lower()]
        return b", ".join(found) if found else None

    def set_header(self, name: bytes, value: bytes) -> None:
        self.remove_header(name)
        self.fields.append((name, value))

    def add_header(self, name: bytes, value: bytes) -> None:
        for index, (key, old) in enumerate(self.fields):
            if key.lower() == name.lower():
                self.fields[index] = (key, old + b"," + value)
                return
        self.fields.append((name, value))

    def remove_header(self, name: bytes) -> None:
        self.fields = [(key, value) for key, value in self.fields if key.lower() != name.lower()]

    def replace_headers(self, names: frozenset[bytes], pairs: tuple[tuple[bytes, bytes], ...]) -> None:
        self.fields = [(key, value) for key, value in self.fields if key.lower() not in names]
        self.fields += pairs

    def as_dict(self) -> dict[str, str]:
        """Canonical names (as Go's http.Header prints them) -> value."""
        return {"-".join(p.capitalize() for p in key.decode().split("-")): value.decode() for key, value in self.fields}


class FakeRequest(_Fields):
    def __init__(self, *, method: str, scheme: str, path: str, query: str, host: str, port: int,
                 headers: dict[str, str] | None, client_address: str = "127.0.0.1",
                 certificate: Any = None) -> None:
        super().__init__(headers)
        self.client_address = client_address.encode()
        self.client_certificate = certificate  # the TLS connection's verdict (tls.client_auth.ClientCertificate)
        self.method = method.encode()
        self.scheme = scheme
        self.path = path
        self._query = query.encode()
        self._host = normalize_host(host)
        self.authority = host
        self._port = port
        self.forward_path = path
        self.forward_host = host

    def query_value(self, name: str) -> str | None:
        for key, value in parse_qsl(self._query.decode(), keep_blank_values=True):
            if key == name:
                return value
        return None

    @property
    def host(self) -> str:
        return self._host

    @property
    def query(self) -> bytes:
        return self._query

    @property
    def port(self) -> int:
        return self._port

    @property
    def https_port(self) -> int:
        return 443

    def set_path(self, path: str) -> None:
        self.forward_path = path

    def set_host(self, host: bytes) -> None:
        self.forward_host = host.decode()


class FakeResponse(_Fields):
    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        super().__init__(headers)
        self.status = status


@dataclass
class Outcome:
    """What a client (and the upstream) would see."""

    status: int
    route: Route | None = None
    service: str = ""  # the Service the request went to ("" when it went nowhere)
    namespace: str = ""
    location: str = ""  # of a redirect
    path: str = ""  # forwarded upstream
    host: str = ""  # forwarded Host
    request_headers: dict[str, str] = field(default_factory=dict)  # forwarded
    response_headers: dict[str, str] = field(default_factory=dict)  # sent to the client
    mirrors: list[tuple[str, float]] = field(default_factory=list)  # (service, percent)
    timeouts: Timeouts | None = None
    tls: BackendTLS | None = None  # how the upstream dials the backend's pods (BackendTLSPolicy)
    answer: Any = None  # the filter's Answer, when the proxy answered itself


def build_config(objects: list[dict[str, Any]] | Snapshot, *, gateways: tuple[str, ...] = (),
                 settings: Settings | None = None) -> Config:
    snap = objects if isinstance(objects, Snapshot) else snapshot(*objects)
    return build(snap, settings or Settings(gateways=gateways))


def send(config: Config, path: str = "/", *, host: str = "example.com", port: int = 80, method: str = "GET",
         headers: dict[str, str] | None = None, scheme: str | None = None, draw: float | None = 0.0,
         upstream_headers: dict[str, str] | None = None, offset: int = 8000, ingress: bool = False,
         client: str = "127.0.0.1", certificate: Any = None) -> Outcome:
    """One request to Gateway port `port` (served on local port port + offset); `ingress`: to the Ingress
    listeners' table instead (plain HTTP unless `scheme` says otherwise)."""
    if ingress:
        table, protocol = config.table, "HTTP"
    else:
        listener = config.listeners.get(port + offset)
        if listener is None:
            return Outcome(0)  # nothing listens there
        table, protocol = listener.table, listener.protocol
    raw_path, _, query = path.partition("?")
    normalized = normalize_path(raw_path)
    assert normalized is not None, path
    request = FakeRequest(method=method, scheme=scheme or ("https" if protocol == "HTTPS" else "http"),
                          path=normalized, query=query, host=host, port=port, headers=headers,
                          client_address=client, certificate=certificate)
    route = table.match(normalize_host(host), normalized, request)
    if route is None:
        return Outcome(404)
    outcome = Outcome(0, route=route, timeouts=route.timeouts)
    filters = route.filters
    response_filters: list[Any] = list(filters.response) if filters is not None else []
    if filters is not None:
        for item in filters.request:
            answer = item.on_request(request)
            if answer is not None:
                return _answer(outcome, request, answer, response_filters)
        outcome.mirrors = [_mirror(config, m) for m in filters.mirrors]
    cluster = route.cluster
    if route.backends is not None:
        picked = route.backends.pick(draw)
        if picked is None or not picked.cluster:
            return _answer(outcome, request, None, response_filters, status=500)
        cluster = picked.cluster
        if picked.filters is not None:
            for item in picked.filters.request:
                answer = item.on_request(request)
                if answer is not None:
                    return _answer(outcome, request, answer, [*picked.filters.response, *response_filters])
            outcome.mirrors += [_mirror(config, m) for m in picked.filters.mirrors]
            response_filters = [*picked.filters.response, *response_filters]
    if not cluster:
        return _answer(outcome, request, None, response_filters, status=500)
    target = config.clusters[cluster]
    outcome.status = 200
    outcome.service, outcome.namespace = target.service, target.namespace
    outcome.tls = target.policy.tls if target.policy is not None else None
    outcome.path, outcome.host = request.forward_path, request.forward_host
    outcome.request_headers = request.as_dict()
    response = FakeResponse(200, upstream_headers)
    for item in response_filters:
        item.on_response(request, response)
    outcome.response_headers = response.as_dict()
    return outcome


def _answer(outcome: Outcome, request: FakeRequest, answer: Any, response_filters: list[Any], *,
            status: int = 0) -> Outcome:
    outcome.status = answer.status if answer is not None else status
    outcome.answer = answer
    if answer is not None and answer.location:
        outcome.location = answer.location.decode()
    response = FakeResponse(outcome.status)
    for item in response_filters:
        item.on_response(request, response)
    outcome.response_headers = response.as_dict()
    return outcome


def _mirror(config: Config, item: Mirror) -> tuple[str, float]:
    return config.clusters[item.cluster].service, item.percent
