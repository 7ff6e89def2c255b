"""The BackendTrafficPolicy CRD (deploy/crds/): a structural schema that rejects what `kubectl apply` should
reject (unknown fields, values outside enums and ranges, malformed durations) and takes every field the
README documents; what it accepts, the translator reads without a warning.

Samples are checked with tests/kubeapi/crd_schema.py, which applies the schema as the API server does for a
write with field validation Strict (kubectl's default); the emulator uses the same check, so cluster-mode
tests see a typo refused with a 422 (test_policy_watch.py).
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeapi.crd_schema import load_crd, problems, schema_of, structural_problems
from proxy.routing.policy.traffic import read_traffic_policy

CRD = load_crd("backendtrafficpolicies.yaml")
SCHEMA = schema_of(CRD, "v1alpha1")
SPEC = SCHEMA["properties"]["spec"]
README = Path(__file__).resolve().parents[2] / "README.md"

FULL: dict[str, Any] = {
    "targetRefs": [{"group": "", "kind": "Service", "name": "web"},
                   {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "shop", "sectionName": "cart"},
                   {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "edge", "sectionName": "http"},
                   {"group": "networking.k8s.io", "kind": "Ingress", "name": "legacy"}],
    "loadBalancer": {"type": "ConsistentHash", "consistentHash": {"type": "Cookie", "cookie": {"name": "user"}}},
    "sessionPersistence": {"sessionName": "sticky", "absoluteTimeout": "1h", "type": "Cookie",
                           "cookieConfig": {"lifetimeType": "Permanent"}},
    "retry": {"numRetries": 3, "retryOn": {"triggers": ["connect-failure", "reset", "5xx", "gateway-error",
                                                        "retriable-status-codes"], "httpStatusCodes": [503, 429]},
              "perRetry": {"timeout": "2s", "backOff": {"baseInterval": "50ms", "maxInterval": "1s"}},
              "budget": {"percent": 20, "minRetryConcurrency": 3}, "idempotentOnly": True},
    "circuitBreaker": {"maxConnections": 1024, "maxPendingRequests": 64, "maxParallelRequests": 512,
                       "maxParallelRetries": 8},
    "healthCheck": {"passive": {"consecutive5XxErrors": 5, "consecutiveGatewayErrors": 3, "baseEjectionTime": "30s",
                                "maxEjectionTime": "5m", "maxEjectionPercent": 10},
                    "active": {"type": "HTTP", "http": {"path": "/healthz", "expectedStatuses": [200]},
                               "interval": "3s", "timeout": "1s", "healthyThreshold": 1, "unhealthyThreshold": 3}},
    "faultInjection": {"delay": {"fixedDelay": "100ms", "percentage": 5.5}, "abort": {"httpStatus": 503,
                                                                                      "percentage": 1},
                       "onlyWithHeader": "x-fault"},
    "rateLimit": {"type": "Local", "local": {"rules": [{
        "clientSelectors": [{"sourceCIDR": {"type": "Distinct", "value": "0.0.0.0/0"}}],
        "limit": {"requests": 100, "unit": "Minute", "burst": 20}}]}},
    "timeout": {"http": {"requestTimeout": "30s"}},
}


def sample(**changes: Any) -> dict[str, Any]:
    """The full spec with fields replaced (dotted paths; None removes the field)."""
    spec = copy.deepcopy(FULL)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = spec
        for name in parents:
            node = node[int(name)] if isinstance(node, list) else node[name]
        if value is None:
            del node[last]
        else:
            node[last] = value
    return spec


def test_the_crd_is_structural_and_keeps_no_unknown_fields() -> None:
    assert CRD["spec"]["scope"] == "Namespaced"
    assert CRD["spec"]["names"]["kind"] == "BackendTrafficPolicy" and CRD["spec"]["group"] == "pyngress.dev"
    (version,) = CRD["spec"]["versions"]
    assert version["served"] and version["storage"] and version["subresources"] == {"status": {}}
    assert structural_problems(SCHEMA) == []
    assert "x-kubernetes-preserve-unknown-fields" not in yaml.safe_dump(CRD)


def test_a_policy_with_every_field_is_accepted_and_read_without_a_warning() -> None:
    assert problems(SPEC, FULL, "spec") == []
    policy = read_traffic_policy(("default", "p"), {"metadata": {"name": "p", "namespace": "default"}, "spec": FULL})
    assert not policy.problem and policy.warnings == []
    assert all(getattr(policy.spec, field) is not None for field in (
        "load_balancer", "affinity", "retry", "circuit_breaker", "ejection", "health_check", "fault", "rate_limit",
        "timeouts"))


REJECTED: list[tuple[str, dict[str, Any], str]] = [
    ("a typo at the top", {"retires": {"numRetries": 1}}, 'unknown field "spec.retires"'),
    ("a typo deep down", {"retry__perRetry__backoff": {}}, 'unknown field "spec.retry.perRetry.backoff"'),
    ("an Envoy Gateway field we do not serve", {"rateLimit__local__rules__0__clientSelectors__0__headers": []},
     "unknown field"),
    ("no targets", {"targetRefs": []}, "should have at least 1 items"),
    ("a target kind we cannot attach to", {"targetRefs__0__kind": "Secret"}, "Unsupported value: 'Secret'"),
    ("a target without a group", {"targetRefs__0__group": None}, "spec.targetRefs[0].group: Required value"),
    ("a balancer we do not have", {"loadBalancer__type": "Maglev"}, "Unsupported value: 'Maglev'"),
    ("a hash on query parameters", {"loadBalancer__consistentHash__type": "QueryParams"}, "Unsupported value"),
    ("a negative retry count", {"retry__numRetries": -1}, "greater than or equal to 0"),
    ("a retry trigger we do not have", {"retry__retryOn__triggers": ["refused-stream"]}, "Unsupported value"),
    ("a duration without a unit", {"retry__perRetry__timeout": "2"}, "should match"),
    ("a duration in Go's float form", {"healthCheck__passive__baseEjectionTime": "1.5s"}, "should match"),
    ("a percentage over 100", {"faultInjection__abort__percentage": 150}, "less than or equal to 100"),
    ("a percentage as text", {"faultInjection__delay__percentage": "10%"}, "must be of type number"),
    ("an abort status that is not one", {"faultInjection__abort__httpStatus": 42}, "greater than or equal to 200"),
    ("an empty fault injection", {"faultInjection": {}}, "at least 1 properties"),
    ("a TCP health check", {"healthCheck__active__type": "TCP"}, "Unsupported value"),
    ("a health check path without a slash", {"healthCheck__active__http__path": "healthz"}, "should match"),
    ("a global rate limit", {"rateLimit__type": "Global"}, "Unsupported value"),
    ("two rate limit rules", {"rateLimit__local__rules": [FULL["rateLimit"]["local"]["rules"][0]] * 2},
     "must have at most 1 items"),
    ("a rate unit that is not one", {"rateLimit__local__rules__0__limit__unit": "Week"}, "Unsupported value"),
    ("a limit without requests", {"rateLimit__local__rules__0__limit__requests": None}, "Required value"),
    ("a header session", {"sessionPersistence__type": "Header"}, "Unsupported value"),
    ("a header name with a space", {"faultInjection__onlyWithHeader": "x fault"}, "should match"),
    ("a breaker limit as text", {"circuitBreaker__maxConnections": "10"}, "must be of type integer"),
    ("a TCP connect timeout (not served)", {"timeout__tcp": {"connectTimeout": "1s"}}, "unknown field"),
    ("a request timeout without a unit", {"timeout__http__requestTimeout": "30"}, "should match"),
    ("an ejection percentage over 100", {"healthCheck__passive__maxEjectionPercent": 101}, "less than or equal"),
]


@pytest.mark.parametrize(("case", "changes", "expected"), REJECTED, ids=[case[0] for case in REJECTED])
def test_what_kubectl_apply_rejects(case: str, changes: dict[str, Any], expected: str) -> None:
    found = problems(SPEC, sample(**changes), "spec")
    assert found and any(expected in problem for problem in found), found


def test_status_entries_the_writer_makes_fit_the_schema() -> None:
    status = {"ancestors": [{
        "ancestorRef": {"group": "", "kind": "Service", "namespace": "default", "name": "web"},
        "controllerName": "pyngress.dev/gateway-controller",
        "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted", "message": "applied",
                        "observedGeneration": 1, "lastTransitionTime": "2026-01-01T00:00:00Z"}]}]}
    assert problems(SCHEMA["properties"]["status"], status, "status") == []
    broken = copy.deepcopy(status)
    broken["ancestors"][0]["conditions"][0]["status"] = "Maybe"
    assert problems(SCHEMA["properties"]["status"], broken, "status")


def test_every_policy_in_the_readme_is_accepted_by_the_schema_and_read_without_a_warning() -> None:
    text = README.read_text()
    found = [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", text, re.S)]
    policies = [doc for doc in found if isinstance(doc, dict) and doc.get("kind") == "BackendTrafficPolicy"]
    assert policies, "the README shows BackendTrafficPolicy examples"
    for doc in policies:
        assert doc["apiVersion"] == "pyngress.dev/v1alpha1"
        assert problems(SPEC, doc["spec"], "spec") == [], doc
        policy = read_traffic_policy(("default", doc["metadata"]["name"]), doc)
        assert not policy.problem and policy.warnings == [], policy.warnings
