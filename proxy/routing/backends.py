"""Service port → ready endpoints: the Cluster a backend reference resolves to.

Kept apart from route building because the controller calls `resolve_cluster`
alone when only EndpointSlices/Endpoints changed: pods churn far more often than
Ingresses, and that must not rebuild any route.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Iterable, Mapping

from proxy.routing.fields import Malformed, mapping, port_number, require_object, sequence, text
from proxy.routing.model import Cluster, Endpoint, KubeObject, Snapshot, Warning

# EndpointSlice address types we can dial directly; FQDN slices are refused (not resolved here).
_IP_ADDRESS_TYPES = frozenset({"IPv4", "IPv6"})
_TCP = "TCP"


def _is_number(port: str) -> bool:
    """Backend ports are numbers or IANA service names, which always hold a letter."""
    return port.isascii() and port.isdigit()


def cluster_key(namespace: str, service: str, port: str | int) -> str:
    """The upstream identity routes point to: "namespace/service:port" (port as written in the backend)."""
    return f"{namespace}/{service}:{port}"


def resolve_cluster(
    snapshot: Snapshot, *, namespace: str, service: str, port: str
) -> tuple[Cluster, list[Warning]]:
    """The Cluster for one Service port, with its ready endpoints.

    `port` is the Ingress backend's port: a number ("80") or a Service port name
    ("http"). Problems never raise: the Cluster comes back without endpoints (the
    proxy answers 503) and the reasons come back as warnings.
    """
    key = cluster_key(namespace, service, port)
    warnings: list[Warning] = []
    try:
        cluster = _resolve(snapshot, key=key, namespace=namespace, service=service, port=port, warnings=warnings)
    except Malformed as error:
        warnings.append(Warning("Service", namespace, service, f"{error}; backend {key} has no endpoints"))
        cluster = Cluster(key=key, namespace=namespace, service=service, port=port)
    except Exception as error:  # noqa: BLE001  (a bug must cost one backend, never the whole build)
        warnings.append(
            Warning("Service", namespace, service, f"cannot resolve backend {key}: {type(error).__name__}: {error}")
        )
        cluster = Cluster(key=key, namespace=namespace, service=service, port=port)
    return cluster, warnings


def _resolve(
    snapshot: Snapshot, *, key: str, namespace: str, service: str, port: str, warnings: list[Warning]
) -> Cluster:
    empty = Cluster(key=key, namespace=namespace, service=service, port=port)
    obj = snapshot.services.get((namespace, service))
    if obj is None:
        warnings.append(Warning("Service", namespace, service, f"not found; backend {key} has no endpoints"))
        return empty
    spec = mapping(require_object(obj, "Service"), "spec", "")
    service_type = text(spec, "type", "spec.")
    entry = _service_port(spec, port)

    if service_type == "ExternalName":
        external_name = text(spec, "externalName", "spec.", required=True)
        if entry is None:
            if not _is_number(port):
                raise Malformed(f"has no port named {port!r}")
            external_port = int(port)
            if not 0 < external_port < 65536:
                raise Malformed(f"backend port {port} is not a port number")
        else:
            external_port = entry[1]
        return Cluster(
            key=key,
            namespace=namespace,
            service=service,
            port=port,
            external_name=external_name,
            external_port=external_port,
        )

    if entry is None:
        what = f"port {port}" if _is_number(port) else f"port named {port!r}"
        raise Malformed(f"has no TCP {what}")
    port_name = entry[0]
    slices = snapshot.endpoint_slices.get((namespace, service))
    if slices:
        found = _slice_endpoints(slices, namespace=namespace, port_name=port_name, warnings=warnings)
    else:
        legacy = snapshot.endpoints.get((namespace, service))
        found = (
            _legacy_endpoints(legacy, namespace=namespace, service=service, port_name=port_name, warnings=warnings)
            if legacy is not None
            else []
        )
    return Cluster(
        key=key, namespace=namespace, service=service, port=port, endpoints=tuple(sorted(set(found)))
    )


def _service_port(spec: dict[str, Any], port: str) -> tuple[str, int] | None:
    """(name, port) of the Service port entry the backend names, TCP only; None when there is none."""
    by_number = _is_number(port)
    for index, item in enumerate(sequence(spec, "ports", "spec.")):
        where = f"spec.ports[{index}]."
        item = require_object(item, where[:-1])
        if text(item, "protocol", where) not in ("", _TCP):
            continue
        name = text(item, "name", where)
        number = port_number(item, "port", where)
        if number is None:
            raise Malformed(f"{where}port is missing")
        if (by_number and str(number) == port) or (not by_number and name == port):
            return name, number
    return None


def _slice_endpoints(
    slices: Mapping[str, KubeObject], *, namespace: str, port_name: str, warnings: list[Warning]
) -> list[Endpoint]:
    found: list[Endpoint] = []
    for slice_name in sorted(slices):
        problems: list[str] = []
        try:
            found.extend(_one_slice(slices[slice_name], port_name=port_name, problems=problems))
        except Malformed as error:
            problems.append(f"{error}; slice skipped")
        warnings.extend(Warning("EndpointSlice", namespace, slice_name, problem) for problem in problems)
    return found


def _one_slice(obj: Any, *, port_name: str, problems: list[str]) -> list[Endpoint]:
    """Ready endpoints of one slice; a broken endpoint is skipped alone (reported in `problems`)."""
    obj = require_object(obj, "EndpointSlice")
    address_type = text(obj, "addressType", "")
    if address_type not in _IP_ADDRESS_TYPES:
        raise Malformed(f"addressType {address_type!r} is not supported (IPv4 and IPv6 are)")
    target = None
    for index, item in enumerate(sequence(obj, "ports", "")):
        where = f"ports[{index}]."
        item = require_object(item, where[:-1])
        if text(item, "name", where) == port_name and text(item, "protocol", where) in ("", _TCP):
            target = port_number(item, "port", where)
            if target is None:
                raise Malformed(f"{where}port is missing")
            break
    if target is None:
        return []  # this slice carries no endpoints for that Service port
    found = []
    for index, item in enumerate(sequence(obj, "endpoints", "")):
        where = f"endpoints[{index}]."
        try:
            item = require_object(item, where[:-1])
            ready = mapping(item, "conditions", where).get("ready")
            if ready is False:
                continue
            if ready is not None and ready is not True:
                raise Malformed(f"{where}conditions.ready must be a boolean, got {ready!r}")
            for address in _addresses(sequence(item, "addresses", where), where + "addresses"):
                found.append(Endpoint(address, target))
        except Malformed as error:
            problems.append(f"{error}; endpoint skipped")
    return found


def _legacy_endpoints(
    obj: Any, *, namespace: str, service: str, port_name: str, warnings: list[Warning]
) -> list[Endpoint]:
    """v1 Endpoints: used only for Services that have no EndpointSlice at all."""
    found: list[Endpoint] = []
    try:
        obj = require_object(obj, "Endpoints")
        for index, subset in enumerate(sequence(obj, "subsets", "")):
            where = f"subsets[{index}]."
            subset = require_object(subset, where[:-1])
            target = None
            for number, item in enumerate(sequence(subset, "ports", where)):
                item = require_object(item, f"{where}ports[{number}]")
                item_where = f"{where}ports[{number}]."
                if text(item, "name", item_where) == port_name and text(item, "protocol", item_where) in ("", _TCP):
                    target = port_number(item, "port", item_where)
                    if target is None:
                        raise Malformed(f"{item_where}port is missing")
                    break
            if target is None:
                continue
            ips = []
            for number, item in enumerate(sequence(subset, "addresses", where)):
                item_where = f"{where}addresses[{number}]"
                ips.append(text(require_object(item, item_where), "ip", item_where + ".", required=True))
            for address in _addresses(ips, where + "addresses"):
                found.append(Endpoint(address, target))
    except Malformed as error:
        warnings.append(Warning("Endpoints", namespace, service, f"{error}; Endpoints skipped"))
        return []
    return found


def _addresses(values: Iterable[Any], where: str) -> list[str]:
    addresses = []
    for value in values:
        if not isinstance(value, str):
            raise Malformed(f"{where} must hold IP address strings, got {value!r}")
        try:
            addresses.append(str(ipaddress.ip_address(value)))
        except ValueError:
            raise Malformed(f"{where}: {value!r} is not an IP address") from None
    return addresses
