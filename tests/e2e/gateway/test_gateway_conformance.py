"""The upstream Gateway API conformance tests end to end: the conformance data of tests/routing/gateway (the
same manifests, requests and expected answers) against the real `pyngress` process, in file mode and in
cluster mode, with echo pods behind it and real clients in front (conformance_runner.py says what this adds
to the routing level). One test per upstream test and mode, named after it: test_<Name>[file], [cluster].
"""

from __future__ import annotations

import pytest

from routing.gateway.scenario import ConformanceTest
from routing.gateway.suite_gateway import TESTS as GATEWAY_TESTS
from routing.gateway.suite_httproute import TESTS as HTTPROUTE_TESTS

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(120)]


def _end_to_end(test: ConformanceTest):
    async def check(conformance) -> None:
        await conformance.run(test)

    check.__name__ = check.__qualname__ = f"test_{test.name}"
    check.__doc__ = f"Upstream conformance test {test.name}, end to end."
    if test.xfail:
        check = pytest.mark.xfail(strict=True, reason=test.xfail)(check)
    return check


globals().update({f"test_{test.name}": _end_to_end(test) for test in (*HTTPROUTE_TESTS, *GATEWAY_TESTS)})
