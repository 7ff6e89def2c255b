"""bench.callgrind_diff reads self costs from callgrind's dump format: a function's own cost lines count, the
inclusive cost of a call (the line after `calls=`) does not, compressed names are resolved."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root: the bench package

from bench.callgrind_diff import diff, self_costs

DUMP = """# callgrind format
version: 1
positions: line
events: Ir
summary: {total}

ob=(1) /usr/lib/libpython3.11.so
fl=(1) ceval.c
fn=(1) eval
10 {eval_cost}
cfn=(2) slice
calls=3 5
* 900
+2 5
fn=(2)
5 {slice_cost}
fi=(2) inlined.h
7 2
fe=(1)
ob=(2) /tree/proxy/http/pipeline.so
fn=(3) dispatch
1 {dispatch_cost}
"""


def write(tmp_path: Path, name: str, **costs: int) -> str:
    path = tmp_path / name
    path.write_text(DUMP.format(total=sum(costs.values()), **costs))
    return str(path)


def test_self_costs_skip_call_lines_and_resolve_names(tmp_path):
    costs = self_costs(write(tmp_path, "a.out.1", eval_cost=100, slice_cost=30, dispatch_cost=40))
    assert costs == {"eval [libpython3.11.so]": 105, "slice [libpython3.11.so]": 32, "dispatch [pipeline.so]": 40}


def test_diff_per_request_largest_increase_first(tmp_path):
    before = self_costs(write(tmp_path, "a.out.1", eval_cost=100, slice_cost=30, dispatch_cost=40))
    after = self_costs(write(tmp_path, "b.out.1", eval_cost=100, slice_cost=10, dispatch_cost=60))
    rows = diff(before, after, 10)
    assert [(round(change, 1), name) for change, name, _, _ in rows] == [
        (2.0, "dispatch [pipeline.so]"), (0.0, "eval [libpython3.11.so]"), (-2.0, "slice [libpython3.11.so]")]
