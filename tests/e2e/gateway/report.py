"""The conformance list: each upstream Gateway API conformance test and how its reproductions fare.

    .venv/bin/python tests/e2e/gateway/report.py [extra pytest arguments]

runs the routing-level reproductions (tests/routing/gateway) and the end-to-end ones (this folder, file and
cluster mode) and prints one line per upstream test: "Name  routing: pass  file: pass  cluster: pass", each
column pass, fail or xfail (a known failure, with its reason below the table). The upstream tests left out
are listed after it with why. Exit status: pytest's.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PATHS = (
    "tests/routing/gateway/test_conformance_httproute.py",
    "tests/routing/gateway/test_conformance_gateway.py",
    "tests/routing/gateway/test_conformance_backendtls.py",
    "tests/routing/gateway/test_conformance_grpcroute.py",
    "tests/e2e/gateway/test_gateway_conformance.py",
)
COLUMNS = ("routing", "file", "cluster")
# Upstream tests of the GATEWAY-HTTP and GATEWAY-GRPC profiles' features that are not reproduced, and why.
OUT_OF_SCOPE = {
    "HTTPRouteRetry, HTTPRouteRetryConnectionError, HTTPRouteRetryWithTimeouts": "experimental channel",
    "GatewayFrontendClientCertificateValidation and the other client certificate tests": "not implemented",
    "GatewayTLSBackendClientCertificate, GatewayInvalidTLSBackendConfiguration": "the Gateway's client certificate "
                                                                                 "to backends (tls.backend)",
    "BackendTLSPolicyTLSRouteTerminate": "TLSRoute on a terminating listener",
    "The mesh profile's tests (conformance/tests/mesh, GRPCRoute ones included)": "mesh (GAMMA) is not served",
    "GatewayInfrastructure": "infrastructure propagation",
    "ListenerSetGatewayParentSectionNameNotFound": "ListenerSet",
}
_NAME = re.compile(r"test_(?P<name>[A-Za-z0-9]+)(?:\[(?P<mode>file|cluster)\])?$")


class Outcomes:
    """A pytest plugin that keeps each conformance test's outcome by (upstream name, column)."""

    def __init__(self) -> None:
        self.found: dict[tuple[str, str], str] = {}
        self.reasons: dict[str, str] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        found = _NAME.search(report.nodeid.rsplit("::", 1)[-1])
        if found is None or not found["name"][:1].isupper():
            return
        column = found["mode"] or "routing"
        key = (found["name"], column)
        if hasattr(report, "wasxfail"):
            outcome = "xfail"
            self.reasons[found["name"]] = report.wasxfail
        elif report.failed:
            outcome = "fail"
        elif report.passed and report.when == "call":
            outcome = "pass"
        elif report.skipped:
            outcome = "skip"
        else:
            return
        if self.found.get(key) != "fail":  # a failing setup or teardown stays a failure
            self.found[key] = outcome


def main(argv: list[str]) -> int:
    os.chdir(ROOT)  # pytest's configuration (pyproject.toml) and rootdir
    sys.path.insert(0, str(ROOT / "tests"))
    from routing.gateway.suite_backendtls import TESTS as BACKEND_TLS_TESTS
    from routing.gateway.suite_gateway import TESTS as GATEWAY_TESTS
    from routing.gateway.suite_grpcroute import TESTS as GRPCROUTE_TESTS
    from routing.gateway.suite_httproute import TESTS as HTTPROUTE_TESTS

    outcomes = Outcomes()
    status = pytest.main(["-q", "-p", "no:cacheprovider", *[str(ROOT / p) for p in PATHS], *argv], plugins=[outcomes])
    names = [test.name for test in (*HTTPROUTE_TESTS, *GATEWAY_TESTS, *BACKEND_TLS_TESTS, *GRPCROUTE_TESTS)]
    width = max(len(name) for name in names)
    print("\nUpstream conformance test -> routing level / end to end in file mode / in cluster mode")
    for name in names:
        cells = [f"{column}: {outcomes.found.get((name, column), 'not run')}" for column in COLUMNS]
        print(f"{name:<{width}}  " + "  ".join(f"{cell:<13}" for cell in cells))
    counts = {column: sum(outcomes.found.get((n, column)) == "pass" for n in names) for column in COLUMNS}
    print(f"\n{len(names)} upstream tests; passing: " + ", ".join(f"{c} {counts[c]}" for c in COLUMNS))
    for name, reason in sorted(outcomes.reasons.items()):
        print(f"xfail {name}: {reason}")
    print("\nNot reproduced:")
    for name, reason in OUT_OF_SCOPE.items():
        print(f"  {name}: {reason}")
    return int(status)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
