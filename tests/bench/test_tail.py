"""bench/tail.py's own pieces: the probe's GC and lag histograms, their deltas between two snapshots, and the
scheduler figures of a live process (no load: the bench itself is run by hand)."""

from __future__ import annotations

import os

from bench.tail import _probe_delta, _variant, schedstat
from bench.tail_probe import Probe


def test_probe_records_collections_by_generation_and_the_delta_between_snapshots() -> None:
    probe = Probe()
    before = probe.snapshot()
    probe.on_gc("start", {"generation": 2})
    probe.on_gc("stop", {"generation": 2, "collected": 5})
    probe.on_gc("start", {"generation": 0})
    probe.on_gc("stop", {"generation": 0, "collected": 0})
    after = probe.snapshot()
    delta = _probe_delta(before, after)
    assert delta["gen2"]["n"] == 1 and delta["gen0"]["n"] == 1 and delta["gen1"]["n"] == 0
    assert sum(delta["gen2"]["buckets"].values()) == 1
    assert delta["gc_cpu"]["n"] == 2
    assert after["collected"] == [0, 0, 5]
    assert _probe_delta(None, after) == {}


def test_variant_spec_and_schedstat_of_this_process() -> None:
    assert _variant("base") == ("base", {})
    assert _variant("x:PYNGRESS_PROBE_GC=off;PYNGRESS_PROBE_LAG_MS=2") == (
        "x", {"PYNGRESS_PROBE_GC": "off", "PYNGRESS_PROBE_LAG_MS": "2"})
    cpu, wait, switches = schedstat([os.getpid()])
    assert cpu > 0 and wait >= 0 and switches >= 0
    assert schedstat([2**22 + 12345]) == (0.0, 0.0, 0)  # no such process
