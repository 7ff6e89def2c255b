"""How the Gateway API status writer merges what the build says into what an object shows (table-style, no
sockets; the writes themselves run against the emulator in test_gateway_status.py)."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.kube.gateway_status import (
    GROUP,
    MAX_PARENTS,
    class_status,
    gateway_addresses,
    gateway_status,
    parent_key,
    route_status,
    stamp,
)

OURS = "pyngress.dev/gateway-controller"
THEIRS = "example.com/other"
NOW = "2026-05-01T12:00:00Z"
THEN = "2020-01-01T00:00:00Z"


def cond(kind: str, state: str = "True", *, reason: str = "", generation: int = 1, at: str | None = None) -> dict:
    found = {"type": kind, "status": state, "reason": reason or kind, "message": "", "observedGeneration": generation}
    if at is not None:
        found["lastTransitionTime"] = at
    return found


def entry(gateway: str, controller: str = OURS, *conditions: dict, section: str = "", **ref: Any) -> dict:
    parent_ref = {"group": GROUP, "kind": "Gateway", "namespace": "infra", "name": gateway, **ref}
    if section:
        parent_ref["sectionName"] = section
    return {"parentRef": parent_ref, "controllerName": controller, "conditions": list(conditions) or [cond("Accepted")]}


def everything(_key: object) -> bool:
    return True


def merge(current: Any, desired: list[dict], owns: Any = everything) -> dict | None:
    return route_status(current, desired, namespace="default", controller=OURS, owns=owns, now=NOW)


def test_stamp_keeps_the_time_while_type_and_status_hold() -> None:
    before = [cond("Accepted", at=THEN), cond("Programmed", "False", at=THEN), cond("ResolvedRefs")]
    desired = [cond("Accepted", generation=2), cond("Programmed", generation=2), cond("ResolvedRefs"),
               cond("Conflicted", "False")]
    assert [c["lastTransitionTime"] for c in stamp(desired, before, NOW)] == [
        THEN,  # same status, though observedGeneration moved
        NOW,  # False -> True
        NOW,  # stored without a time (not ours, or broken): now
        NOW,  # new
    ]
    assert stamp(desired[:1], "garbage", NOW)[0]["lastTransitionTime"] == NOW


def test_class_status_is_none_when_only_times_differ() -> None:
    desired = {"conditions": [cond("Accepted")], "supportedFeatures": [{"name": "HTTPRoute"}]}
    current = {"conditions": [cond("Accepted", at=THEN)], "supportedFeatures": [{"name": "HTTPRoute"}]}
    assert class_status(current, desired, NOW) is None
    changed = class_status(current, {**desired, "supportedFeatures": [{"name": "Gateway"}]}, NOW)
    assert changed is not None and changed["conditions"] == [cond("Accepted", at=THEN)]


@pytest.mark.parametrize("current,desired,expected", [
    # Nothing of ours, nothing to say: no write.
    (None, [], None),
    ({"parents": [entry("theirs", THEIRS)]}, [], None),
    # Ours added after theirs, theirs kept in its place.
    ({"parents": [entry("theirs", THEIRS)]}, [entry("edge")],
     [entry("theirs", THEIRS), entry("edge", OURS, cond("Accepted", at=NOW))]),
    # A parent we no longer serve: our entry goes.
    ({"parents": [entry("old", OURS, cond("Accepted", at=THEN)), entry("theirs", THEIRS)]}, [],
     [entry("theirs", THEIRS)]),
    # The same entries in another order (someone else appended theirs after ours): no write.
    ({"parents": [entry("edge", OURS, cond("Accepted", at=THEN)), entry("theirs", THEIRS)]}, [entry("edge")], None),
    # A condition that changed: rewritten; the unchanged one keeps its time.
    ({"parents": [entry("edge", OURS, cond("Accepted", at=THEN), cond("ResolvedRefs", at=THEN))]},
     [entry("edge", OURS, cond("Accepted"), cond("ResolvedRefs", "False", reason="BackendNotFound"))],
     [entry("edge", OURS, cond("Accepted", at=THEN), cond("ResolvedRefs", "False", reason="BackendNotFound", at=NOW))]),
    # Another controller's entry for the same Gateway is still theirs.
    ({"parents": [entry("edge", THEIRS)]}, [entry("edge")], [entry("edge", THEIRS), entry("edge", OURS, cond(
        "Accepted", at=NOW))]),
])
def test_route_parents_replace_only_our_entries(current: Any, desired: list[dict], expected: list | None) -> None:
    merged = merge(current, desired)
    assert (merged["parents"] if merged is not None else None) == expected


def test_parent_refs_match_with_their_defaults() -> None:
    stored = {"parentRef": {"name": "edge", "namespace": "infra"}, "controllerName": OURS,
              "conditions": [cond("Accepted", at=THEN)]}
    assert parent_key(stored["parentRef"], "default") == parent_key(entry("edge")["parentRef"], "default")
    assert parent_key({"name": "edge"}, "default")[2] == "default"  # the route's namespace
    merged = merge({"parents": [stored]}, [entry("edge")])
    assert merged is not None and merged["parents"] == [entry("edge", OURS, cond("Accepted", at=THEN))]
    # sectionName and port make another parent.
    merged = merge({"parents": [entry("edge", OURS, cond("Accepted", at=THEN))]}, [entry("edge", section="http")])
    assert merged is not None and merged["parents"] == [entry("edge", OURS, cond("Accepted", at=NOW), section="http")]


def test_with_gateway_flags_sibling_processes_entries_are_kept() -> None:
    # --gateway infra/edge: our controllerName on infra/other is another process of ours.
    def owns(key: tuple) -> bool:
        return f"{key[2]}/{key[3]}" == "infra/edge"

    sibling = entry("other", OURS, cond("Accepted", at=THEN))
    merged = merge({"parents": [sibling, entry("edge", OURS, cond("Accepted", at=THEN))]}, [], owns)
    assert merged is not None and merged["parents"] == [sibling]
    assert merge({"parents": [sibling]}, [], owns) is None


def test_our_entries_fit_beside_other_controllers_in_at_most_32() -> None:
    others = [entry(f"g{i}", THEIRS) for i in range(MAX_PARENTS - 1)]
    merged = merge({"parents": others}, [entry("a"), entry("b")])
    assert merged is not None and len(merged["parents"]) == MAX_PARENTS
    assert merged["parents"][-1]["parentRef"]["name"] == "a"


GATEWAY = {"conditions": [cond("Accepted"), cond("Programmed")],
           "listeners": [{"name": "http", "supportedKinds": [{"group": GROUP, "kind": "HTTPRoute"}],
                          "attachedRoutes": 1, "conditions": [cond("Accepted")]}]}
ADDRESS = [{"type": "IPAddress", "value": "192.0.2.1"}]


def test_gateway_status_addresses_and_fields_of_others() -> None:
    written = gateway_status({"attachedListenerSets": 0}, GATEWAY, ADDRESS, NOW)
    assert written is not None and written["addresses"] == ADDRESS and written["attachedListenerSets"] == 0
    assert written["listeners"][0]["conditions"][0]["lastTransitionTime"] == NOW
    assert gateway_status(written, GATEWAY, ADDRESS, "later") is None
    # Not known now (the Service could not be read): the stored ones stay.
    assert gateway_status(written, GATEWAY, None, NOW) is None
    # None published, or the Gateway not Programmed: none listed.
    assert "addresses" not in (gateway_status(written, GATEWAY, [], NOW) or {"addresses": 1})
    not_programmed = {**GATEWAY, "conditions": [cond("Accepted"), cond("Programmed", "False", reason="Invalid")]}
    assert "addresses" not in (gateway_status(written, not_programmed, ADDRESS, NOW) or {"addresses": 1})


def test_published_addresses_as_gateway_addresses() -> None:
    assert gateway_addresses([{"ip": "2001:db8::1"}, {"hostname": "LB.Example.COM."}, {"hostname": "bad_name"}]) == [
        {"type": "IPAddress", "value": "2001:db8::1"}, {"type": "Hostname", "value": "lb.example.com"}]
