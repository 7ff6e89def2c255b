"""The upstream conformance tests as data, run by two runners: the routing level (tests/routing/gateway, requests
played through the built tables) and end to end (tests/e2e/gateway, the real process, echo pods, real clients).

A `ConformanceTest` is named after its upstream test and is a list of `Step`s. A step is a state of the
cluster: the test's own manifests (the base manifests of conformance/base are added by the runners), the
Gateways under test (the process serving them: `--gateway` at the routing level, see the e2e runner for the
same selection end to end), the status the upstream test waits for (`status_checks`), the Gateway ports
served, and request cases with what the client must see.

A case is `(request, expected)`, two dicts. Request fields: `path` (with its query), `host` (the Host
header; default "example.com"), `port` (the Gateway listener port; default 80), `method`, `headers`,
`scheme`, `sni` (HTTPS: the TLS server name; default the host without its port), `upstream_headers`
(fields the backend adds to its answer: the upstream's BackendSetResponseHeaders), `websocket` (open a
WebSocket and exchange messages), `h2c` (end to end: the request in HTTP/2 cleartext with prior knowledge),
`h2` (end to end: the request in HTTP/2 over TLS, negotiated by ALPN, the upstream's H2Protocol; the routing
level plays it as any request), `draw` (routing level only: the weighted pick, 0 to 1).

Expected fields, as the upstream's ExpectedResponse says them:
- `status`: the status code, or a tuple of acceptable ones; 0: nothing listens on that port.
- `backend`: the Service the request went to (status 200 unless given); "" says the proxy answered itself.
  End to end: the name of the pod that answered starts with it (as upstream checks), or with `pod` when
  given (a Service whose EndpointSlices list another Deployment's pods).
- `namespace`: the namespace of that pod (end to end: that Service's namespace by default).
- `path`, `host`: what the backend received (path without the query); end to end, without `path` the
  backend must have received the request's own path and query, as upstream checks by default.
- `request_headers`: fields the backend received (repeated fields comma-joined, as Go prints them);
  end to end, without it, the request's own headers must have arrived unchanged. `absent`: fields it
  must not have received.
- `response_headers` (a tuple value: any of those, spaces ignored), `absent_response`: the client's answer.
- `location`: a redirect's Location.
- `mirrors`: [(Service, percent)] copies sent; end to end those backends must receive them (percentages:
  counted over a batch of requests, within a binomial bound).
- `timeouts` (routing level: the rule's Timeouts) with `routed_to` (the backend the routing level forwards
  to): the end-to-end status is the client's (504 when the backend is too slow).
- `websocket_echo`: the WebSocket exchange worked (end to end).
- `proto`: the protocol the backend was spoken to in, as the echo reports it ("HTTP/2.0"; end to end).
- `backend_tls` (routing level: how the upstream dials the backend, BackendTLSPolicy): `sni`, `names` (the SANs
  verified), `ca` (the CA ConfigMap whose bundle verifies; "": none, connections fail); with `routed_to` when
  the handshake is to fail (the end-to-end status, a 5xx, is the client's). `backend_sni`: the TLS server name
  the backend received (end to end).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .objects import Obj

if TYPE_CHECKING:
    from proxy.routing.model import Config

    from .status_checks import StatusCheck

Request = dict[str, Any]
Expected = dict[str, Any]
Case = tuple[Request, Expected]


def at(cases: Iterable[Case], **defaults: Any) -> tuple[Case, ...]:
    """The same cases with request fields defaulted (e.g. `port=443`)."""
    return tuple(({**defaults, **request}, expected) for request, expected in cases)


@dataclass(frozen=True)
class Distribution:
    """Requests spread over weighted backends.

    Routing level: `draws` picks at draw i/draws must split exactly by `weights`. End to end: `requests`
    requests, each backend's share within `tolerance` of its weight (None: not checked, as upstream does
    for a test that only follows a header); a backend of weight 0 gets none. `header`: a request field that
    a backend's filter sets to that backend's name (it must arrive once, at that backend's pod).
    """

    weights: dict[str, float]
    draws: int
    requests: int
    tolerance: float | None = None
    header: str = ""
    request: Request = field(default_factory=lambda: {"path": "/"})


@dataclass(frozen=True)
class Step:
    """One state: the test's manifests, what is served, and what clients see."""

    objects: tuple[Obj, ...] = ()
    # The Gateways under test ("name" in the infra namespace, or "namespace/name"); None: every Gateway
    # of our class (the upstream's own GatewayClass tests).
    gateways: tuple[str, ...] | None = ("same-namespace",)
    cases: tuple[Case, ...] = ()
    status_checks: tuple[StatusCheck, ...] = ()
    # The Gateway listener ports served (None: not checked).
    ports: tuple[int, ...] | None = None
    distribution: Distribution | None = None
    # Further assertions on the built Config (routing level only), given the previous step's Config.
    routing: Callable[[Config, Config | None], None] | None = None


@dataclass(frozen=True)
class ConformanceTest:
    name: str  # the upstream test's ShortName
    steps: tuple[Step, ...]
    xfail: str = ""  # why it is expected to fail (strict)


def merged(*objects: Obj) -> list[Obj]:
    """Objects by kind, namespace and name, later ones replacing earlier ones (as the object cache does)."""
    found: dict[tuple[str, str, str], Obj] = {}
    for obj in objects:
        meta = obj["metadata"]
        found[(obj["kind"], meta.get("namespace", ""), meta["name"])] = obj
    return list(found.values())


def qualified(gateway: str, default_namespace: str) -> str:
    return gateway if "/" in gateway else f"{default_namespace}/{gateway}"


# The GatewayClass of the Gateways a step does not put under test, end to end (no controller has it).
NOT_OURS = "another-controllers-class"


def under_test(objects: list[Obj], gateways: tuple[str, ...] | None, default_namespace: str) -> list[Obj]:
    """The objects with every Gateway not in `gateways` given to another GatewayClass: what one process serving
    every test sees of the Gateways other processes would serve (the routing level selects with `--gateway`
    instead; test_selection.py checks that both give the same tables and status)."""
    if gateways is None:
        return objects
    selected = {qualified(g, default_namespace) for g in gateways}
    found = []
    for obj in objects:
        meta = obj["metadata"]
        if obj["kind"] == "Gateway" and f"{meta.get('namespace', '')}/{meta['name']}" not in selected:
            obj = {**obj, "spec": {**obj["spec"], "gatewayClassName": NOT_OURS}}
        found.append(obj)
    return found
