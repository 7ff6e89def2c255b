"""The incremental builder's index of rule hosts: which Ingresses contribute to each host, in age order.

A host is merged again from its contributing Ingresses, oldest first ("the older claim wins" is "the first
claim wins"). Most hosts have one Ingress, so a host's members are kept as small as they can be: the entry
itself, a tuple while few, a set once many (joining stays O(1)). Fewer objects than a set each: a first
build makes one per host.
"""

from __future__ import annotations

from proxy.routing.ingress.processor import IngressEntry, by_age

__all__ = ["HostMembers"]

# Members of a host kept in a tuple up to this many.
_FEW = 8

# The Ingresses contributing to one host.
_Members = IngressEntry | tuple[IngressEntry, ...] | set[IngressEntry]


class HostMembers(dict[str, _Members]):
    """Rule host ("" for host-less rules, "*.x", "x") -> the Ingresses contributing to it."""

    __slots__ = ()

    def of(self, host: str) -> list[IngressEntry]:
        """The Ingresses contributing to `host`, oldest first."""
        members = self.get(host)
        if members is None:
            return []
        return [members] if isinstance(members, IngressEntry) else sorted(members, key=by_age)

    def join(self, host: str, contribution: IngressEntry) -> None:
        members = self.get(host)
        if members is None:
            self[host] = contribution
        elif isinstance(members, IngressEntry):
            self[host] = (members, contribution)
        elif isinstance(members, tuple):
            self[host] = (*members, contribution) if len(members) < _FEW else {*members, contribution}
        else:
            members.add(contribution)

    def leave(self, host: str, contribution: IngressEntry) -> None:
        members = self[host]
        if isinstance(members, IngressEntry):
            del self[host]
        elif isinstance(members, tuple):
            remaining = tuple(member for member in members if member is not contribution)
            self[host] = remaining[0] if len(remaining) == 1 else remaining
        else:
            members.discard(contribution)
            if not members:
                del self[host]
