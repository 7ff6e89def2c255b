"""The end-to-end conformance runs serve every test from one process per mode, so the Gateways a step does not
put under test are handed to another GatewayClass (scenario.under_test) instead of being left out with
`--gateway` as the routing level does. For every step of every conformance test, both give the same listener
tables and the same status of what is ours."""

from __future__ import annotations

import pytest

from proxy.debug import describe_table
from proxy.routing.build import build
from proxy.runtime import Runtime
from proxy.settings import Settings

from .conformance import conformance
from .objects import INFRA, base_objects, snapshot
from .scenario import merged, under_test
from .suite_gateway import TESTS as GATEWAY_TESTS
from .suite_httproute import TESTS as HTTPROUTE_TESTS

STEPS = [
    pytest.param(step, id=f"{test.name}-{index + 1}")
    for test in (*HTTPROUTE_TESTS, *GATEWAY_TESTS)
    for index, step in enumerate(test.steps)
    if step.gateways is not None
]


def _described(config) -> dict:
    found = describe_table(Runtime(config, {}, 0))
    found.pop("generation")
    return found


@pytest.mark.parametrize("step", STEPS)
def test_another_class_selects_like_the_gateway_flag(step):
    flagged = conformance(*step.objects, gateways=step.gateways)
    handed_over = build(snapshot(*under_test(merged(*base_objects(), *step.objects), step.gateways, INFRA)),
                        Settings())
    assert _described(handed_over) == _described(flagged)
