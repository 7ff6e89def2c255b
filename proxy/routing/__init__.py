"""Pure routing: Kubernetes objects in, an immutable routing table out. No I/O here."""

from proxy.objects import Snapshot, Warning
from proxy.routing.model import Backend, Backends, Cluster, Config, Endpoint, ListenerConfig, Route, Timeouts
from proxy.routing.table import Choice, RouteTable, VirtualHost

__all__ = [
    "Backend",
    "Backends",
    "Choice",
    "Cluster",
    "Config",
    "Endpoint",
    "ListenerConfig",
    "Route",
    "RouteTable",
    "Snapshot",
    "Timeouts",
    "VirtualHost",
    "Warning",
]
