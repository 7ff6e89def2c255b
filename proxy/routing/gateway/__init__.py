"""The Gateway API front end (gateway.networking.k8s.io): GatewayClass, Gateway, HTTPRoute, ReferenceGrant.

A translator with no behaviour of its own: `translate` turns a snapshot's Gateway API objects into
per-port `merge.Candidate`s (placed into tables by `routing.listeners`, with the same merge as
Ingress paths) and the status the spec asks for (`status`). Module map:

- `classes`: which GatewayClasses are ours; `listeners`: a Gateway's listeners and their verdicts;
- `routes`: an HTTPRoute's rules (`actions`: filters and backendRefs; `backends`: resolving them);
- `hostnames`, `selectors`, `grants`, `durations`, `meta`: the small rules they share;
- `processor`: attachment of routes to listeners, listener isolation, status assembly.
"""

from proxy.routing.gateway.processor import GatewayTranslation, PortPlan, translate

__all__ = ["GatewayTranslation", "PortPlan", "translate"]
