"""Service port → ready endpoints: the Cluster a backend reference resolves to.

Kept apart from route building because the controller calls `resolve_cluster`
alone when only EndpointSlices/Endpoints changed: pods churn far more often than
Ingresses, and that must not rebuild any route.

The loops over ports and endpoints run for every pod of every backend on each
build, so well-formed entries are checked inline and field paths for messages
are only formatted when something is actually wrong.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from proxy.objects import KubeObject, Snapshot, Warning
from proxy.routing.fields import Malformed, mapping, port_number, require_object, sequence, text
from proxy.routing.model import PROTOCOL_H2C, Cluster, Endpoint
from proxy.routing.policies import HTTP2, ClusterPolicy, policy_key

# EndpointSlice address types we can dial directly; FQDN slices are refused (not resolved here).
_IP_ADDRESS_TYPES = frozenset({"IPv4", "IPv6"})
_TCP = "TCP"
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
# Canonical dotted quad (no leading zeros): the form Kubernetes stores pod IPs in.
_IPV4 = re.compile(rf"{_OCTET}(\.{_OCTET}){{3}}")

# (name, protocol, port number or None) of one `ports[]` entry.
PortEntry = tuple[str, str, "int | None"]


def cluster_key(namespace: str, service: str, port: str | int) -> str:
    """The upstream identity routes point to: "namespace/service:port" (port as written in the backend)."""
    return f"{namespace}/{service}:{port}"


def protocol_key(key: str, protocol: str) -> str:
    """The cluster key of a Service port spoken in `protocol` ("" : the plain key): "namespace/service:port~h2c"."""
    return f"{key}~{protocol}" if protocol else key


def cluster_protocol(key: str) -> str:
    """The protocol a cluster key asks for (see protocol_key): "h2c" or "" (HTTP/1.1)."""
    return PROTOCOL_H2C if f"~{PROTOCOL_H2C}" in key else ""


def split_cluster_key(key: str) -> tuple[str, str, str]:
    """(namespace, service, port) of a cluster key: service and port never hold '/' or ':' (validated);
    a "~digest" suffix (a cluster under a traffic policy, see routing.policies.policy_key) is dropped."""
    key = key.partition("~")[0]
    rest, port = key.rsplit(":", 1)
    namespace, service = rest.rsplit("/", 1)
    return namespace, service, port


def resolve_cluster(snapshot: Snapshot, *, namespace: str, service: str, port: str,
                    policy: ClusterPolicy | None = None) -> tuple[Cluster, list[Warning]]:
    """The Cluster for one Service port, with its ready endpoints.

    `port` is the Ingress backend's port: a number ("80") or a Service port name
    ("http"). Problems never raise: the Cluster comes back without endpoints (the
    proxy answers 503) and the reasons come back as warnings. Under a `policy` the
    cluster is that policy's variant (its key carries the policy's digest).
    """
    return ClusterResolver(snapshot).resolve(namespace=namespace, service=service, port=port, policy=policy)


class ClusterResolver:
    """Resolves many backends against one snapshot, reading a Service's endpoints once per port name.

    Backends naming the same Service port by number and by name share that work.
    """

    __slots__ = ("_snapshot", "_endpoints")

    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot
        # (namespace, service, Service port name) -> (sorted endpoints, warnings about the endpoint objects)
        self._endpoints: dict[tuple[str, str, str], tuple[tuple[Endpoint, ...], list[Warning]]] = {}

    def resolve(self, *, namespace: str, service: str, port: str,
                policy: ClusterPolicy | None = None, protocol: str = "") -> tuple[Cluster, list[Warning]]:
        """See `resolve_cluster`; `protocol`: the cluster's (its key carries it, see protocol_key)."""
        key = cluster_key(namespace, service, port)
        warnings: list[Warning] = []
        try:
            cluster = self._resolve(key=key, namespace=namespace, service=service, port=port, warnings=warnings)
        except Malformed as error:
            warnings.append(Warning("Service", namespace, service, f"{error}; backend {key} has no endpoints"))
            cluster = Cluster(key=key, namespace=namespace, service=service, port=port)
        except Exception as error:  # noqa: BLE001  (a bug must cost one backend, never the whole build)
            message = f"cannot resolve backend {key}: {type(error).__name__}: {error}"
            warnings.append(Warning("Service", namespace, service, message))
            cluster = Cluster(key=key, namespace=namespace, service=service, port=port)
        if protocol:
            cluster = replace(cluster, key=protocol_key(key, protocol), protocol=HTTP2)
            key = cluster.key
        if policy is not None:
            if policy.service_upstream and cluster.external_name is None:
                cluster = replace(cluster, endpoints=self._service_address(namespace, service, port, warnings))
            cluster = replace(cluster, key=policy_key(key, policy), policy=policy)
        return cluster, warnings

    def _service_address(self, namespace: str, service: str, port: str,
                         warnings: list[Warning]) -> tuple[Endpoint, ...]:
        """ingress-nginx's service-upstream: the Service's ClusterIP and port as the only endpoint (none for a
        headless Service, with a warning)."""
        obj = self._snapshot.services.get((namespace, service))
        spec = obj.get("spec") if isinstance(obj, dict) else None
        if not isinstance(spec, dict):
            return ()
        address = spec.get("clusterIP")
        try:
            entry = _service_port(spec, port)
        except Malformed:
            entry = None
        if not isinstance(address, str) or not address or address == "None" or entry is None:
            warnings.append(Warning("Service", namespace, service, "service-upstream: the Service has no cluster IP "
                                    f"and port {port}; backend {cluster_key(namespace, service, port)} has no "
                                    "endpoints"))
            return ()
        return (Endpoint(address, entry[1]),)

    def _resolve(self, *, key: str, namespace: str, service: str, port: str, warnings: list[Warning]) -> Cluster:
        snapshot = self._snapshot
        obj = snapshot.services.get((namespace, service))
        if obj is None:
            warnings.append(Warning("Service", namespace, service, f"not found; backend {key} has no endpoints"))
            return Cluster(key=key, namespace=namespace, service=service, port=port)
        spec = mapping(require_object(obj, "Service"), "spec", "")
        entry = _service_port(spec, port)

        if text(spec, "type", "spec.") == "ExternalName":
            external_name = text(spec, "externalName", "spec.", required=True)
            if entry is not None:
                external_port = entry[1]
            elif _is_number(port):
                external_port = int(port)  # ExternalName Services need not list their ports
                if not 0 < external_port < 65536:
                    raise Malformed(f"backend port {port} is not a port number")
            else:
                raise Malformed(f"has no port named {port!r}")
            return Cluster(
                key=key,
                namespace=namespace,
                service=service,
                port=port,
                external_name=external_name,
                external_port=external_port,
            )

        if entry is None:
            raise Malformed(f"has no TCP port {port}" if _is_number(port) else f"has no TCP port named {port!r}")
        memo_key = (namespace, service, entry[0])
        known = self._endpoints.get(memo_key)
        if known is None:
            problems: list[Warning] = []
            slices = snapshot.endpoint_slices.get((namespace, service))
            if slices:
                found = _slice_endpoints(slices, namespace=namespace, port_name=entry[0], warnings=problems)
            else:
                legacy = snapshot.endpoints.get((namespace, service))
                found = set()
                if legacy is not None:
                    found = _legacy_endpoints(
                        legacy, namespace=namespace, service=service, port_name=entry[0], warnings=problems
                    )
            known = self._endpoints[memo_key] = (tuple(sorted(found)), problems)
        warnings.extend(known[1])
        if _speaks_h2(spec, entry[1]):
            return Cluster(key, namespace, service, port, known[0], protocol=HTTP2)
        return Cluster(key, namespace, service, port, known[0])  # positional: this runs once per backend


# Service port appProtocols of pods spoken to in HTTP/2 without TLS (Gateway API's
# HTTPRouteBackendProtocolH2C; "h2c" as Contour and Istio also accept it).
H2C_APP_PROTOCOLS = frozenset({"kubernetes.io/h2c", "h2c"})


def _speaks_h2(spec: dict[str, Any], number: int) -> bool:
    """Whether the Service port `number` (TCP) names an HTTP/2 appProtocol (see H2C_APP_PROTOCOLS)."""
    for item in spec.get("ports") or ():
        if type(item) is dict and item.get("port") == number and item.get("protocol", _TCP) in (_TCP, None, ""):
            return item.get("appProtocol") in H2C_APP_PROTOCOLS
    return False


def _is_number(port: str) -> bool:
    """Backend ports are numbers or IANA service names, which always hold a letter."""
    return port.isascii() and port.isdigit()


def _ports(obj: dict[str, Any], where: str) -> list[PortEntry]:
    """The `ports` list of a Service, slice or subset; `protocol` defaults to TCP, `name` to ""."""
    entries: list[PortEntry] = []
    for index, item in enumerate(sequence(obj, "ports", where)):
        if type(item) is dict:
            name = item.get("name")
            protocol = item.get("protocol")
            number = item.get("port")
            if name is None:
                name = ""
            if protocol is None or protocol == "":
                protocol = _TCP
            if (
                type(name) is str
                and type(protocol) is str
                and (number is None or (type(number) is int and 0 < number < 65536))
            ):
                entries.append((name, protocol, number))
                continue
        item_where = f"{where}ports[{index}]"
        item = require_object(item, item_where)
        text(item, "name", item_where + ".")
        text(item, "protocol", item_where + ".")
        port_number(item, "port", item_where + ".")
        raise Malformed(f"{item_where} is malformed")  # not reached: one of the reads above raised
    return entries


def _service_port(spec: dict[str, Any], port: str) -> tuple[str, int] | None:
    """(name, port) of the Service port entry the backend names, TCP only; None when there is none. Port ""
    names the first one (ingress-nginx's default-backend annotation uses a Service's first port)."""
    by_number = _is_number(port)
    for index, (name, protocol, number) in enumerate(_ports(spec, "spec.")):
        if protocol != _TCP:
            continue
        if port == "" and number is not None:
            return name, number
        if by_number:
            if number is not None and str(number) == port:
                return name, number
        elif name == port:
            if number is None:  # only the entry asked for counts: a broken neighbour is not its problem
                raise Malformed(f"spec.ports[{index}].port is missing")
            return name, number
    return None


def _target_port(obj: dict[str, Any], port_name: str, where: str) -> int | None:
    """The pod port a slice or subset lists under the Service port's name; None when it lists none."""
    for index, (name, protocol, number) in enumerate(_ports(obj, where)):
        if name == port_name and protocol == _TCP:
            if number is None:
                raise Malformed(f"{where}ports[{index}].port is missing")
            return number
    return None


def _slice_endpoints(
    slices: Mapping[str, KubeObject], *, namespace: str, port_name: str, warnings: list[Warning]
) -> set[Endpoint]:
    found: set[Endpoint] = set()
    for slice_name in sorted(slices):
        problems: list[str] = []
        try:
            _one_slice(slices[slice_name], port_name=port_name, found=found, problems=problems)
        except Malformed as error:
            problems.append(f"{error}; slice skipped")
        for problem in problems:
            warnings.append(Warning("EndpointSlice", namespace, slice_name, problem))
    return found


def _one_slice(obj: Any, *, port_name: str, found: set[Endpoint], problems: list[str]) -> None:
    """Add the ready endpoints of one slice; a broken endpoint is skipped alone (reported in `problems`)."""
    obj = require_object(obj, "EndpointSlice")
    address_type = obj.get("addressType")
    if type(address_type) is not str or address_type not in _IP_ADDRESS_TYPES:
        raise Malformed(f"addressType {address_type!r} is not supported (IPv4 and IPv6 are)")
    target = _target_port(obj, port_name, "")
    if target is None:
        return  # this slice carries no endpoints for that Service port
    for index, item in enumerate(sequence(obj, "endpoints", "")):
        # Fast path: a ready endpoint with one IPv4 address, the shape of nearly every pod.
        if type(item) is dict:
            conditions = item.get("conditions")
            addresses = item.get("addresses")
            if (
                type(conditions) is dict
                and conditions.get("ready") is True
                and type(addresses) is list
                and len(addresses) == 1
                and type(addresses[0]) is str
                and _IPV4.fullmatch(addresses[0])
            ):
                found.add(Endpoint(addresses[0], target))
                continue
        where = f"endpoints[{index}]."
        try:
            item = require_object(item, where[:-1])
            ready = mapping(item, "conditions", where).get("ready")
            if ready is False:
                continue
            if ready is not None and ready is not True:
                raise Malformed(f"{where}conditions.ready must be a boolean, got {ready!r}")
            for address in _addresses(sequence(item, "addresses", where), where + "addresses"):
                found.add(Endpoint(address, target))
        except Malformed as error:
            problems.append(f"{error}; endpoint skipped")


def _legacy_endpoints(
    obj: Any, *, namespace: str, service: str, port_name: str, warnings: list[Warning]
) -> set[Endpoint]:
    """v1 Endpoints: used only for Services that have no EndpointSlice at all.

    `addresses` are the ready ones (`notReadyAddresses` are left out).
    """
    found: set[Endpoint] = set()
    try:
        obj = require_object(obj, "Endpoints")
        for index, subset in enumerate(sequence(obj, "subsets", "")):
            where = f"subsets[{index}]."
            subset = require_object(subset, where[:-1])
            target = _target_port(subset, port_name, where)
            if target is None:
                continue
            ips = []
            for number, item in enumerate(sequence(subset, "addresses", where)):
                item_where = f"{where}addresses[{number}]"
                ips.append(text(require_object(item, item_where), "ip", item_where + ".", required=True))
            for address in _addresses(ips, where + "addresses"):
                found.add(Endpoint(address, target))
    except Malformed as error:
        warnings.append(Warning("Endpoints", namespace, service, f"{error}; Endpoints skipped"))
        return set()
    return found


def _addresses(values: Iterable[Any], where: str) -> list[str]:
    """Validated addresses in canonical form (so equal addresses deduplicate)."""
    addresses = []
    for value in values:
        if not isinstance(value, str):
            raise Malformed(f"{where} must hold IP address strings, got {value!r}")
        if _IPV4.fullmatch(value):
            addresses.append(value)  # already canonical; ipaddress would cost ~15x more
            continue
        try:
            addresses.append(str(ipaddress.ip_address(value)))
        except ValueError:
            raise Malformed(f"{where}: {value!r} is not an IP address") from None
    return addresses
