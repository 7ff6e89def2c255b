"""Pure routing: Kubernetes objects in, an immutable routing table out. No I/O here."""

from proxy.routing.model import (
    Cluster,
    Config,
    Endpoint,
    Route,
    Snapshot,
    Warning,
)
from proxy.routing.table import HostRoutes, RouteTable

__all__ = [
    "Cluster",
    "Config",
    "Endpoint",
    "HostRoutes",
    "Route",
    "RouteTable",
    "Snapshot",
    "Warning",
]
