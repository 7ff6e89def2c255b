"""RouteStats.record: what one finished request adds to its (method, status) series (the per-route metrics that
/metrics renders as pyngress_request_duration_seconds and friends)."""

from __future__ import annotations

from bisect import bisect_left
from itertools import pairwise

from proxy.stats import DURATION_BUCKETS, RouteStats

LABELS = ("shop", "web", "shop.example", "/", "web", "Ingress")


def test_durations_fall_in_the_buckets_bisect_gives():
    """The first bucket is taken without a call (the usual request); every other duration, the bucket boundaries
    themselves included (le: an observation equal to a bound counts in that bucket), and one inside each bucket,
    lands where bisect puts it (stats.bucket compares with literal bounds: this keeps them equal to
    DURATION_BUCKETS, ingress-nginx's request-time buckets)."""
    stats = RouteStats(LABELS)
    bounds = (0.0, *DURATION_BUCKETS)
    between = [(low + high) / 2 for low, high in pairwise(bounds)]  # one duration inside every bucket
    durations = [0.0, 0.001, 0.005, 0.0050001, 0.01, 0.3, 10.0, 11.5, *DURATION_BUCKETS, *between]
    for duration in durations:
        stats.record(b"GET", 200, duration, duration, 10, 20, 0)
    stats.record(b"GET", 200, 0.002, -1.0, 10, 20, 1)  # no upstream response head: no upstream observation
    [[method, status, requests, received, sent, retries, duration_sum, buckets, upstream_count, upstream_sum,
      upstream_buckets, exemplars]] = stats.snapshot()
    expected = [0] * (len(DURATION_BUCKETS) + 1)
    for duration in durations:
        expected[bisect_left(DURATION_BUCKETS, duration)] += 1
    assert upstream_buckets == expected and upstream_count == len(durations)
    expected[0] += 1
    assert buckets == expected and (buckets[0], buckets[1], buckets[-1]) == (6, 4, 1)
    count = len(durations) + 1
    assert (method, status, requests, received, sent, retries) == ("GET", 200, count, 10 * count, 20 * count, 1)
    assert abs(duration_sum - (sum(durations) + 0.002)) < 1e-9 and abs(upstream_sum - sum(durations)) < 1e-9
    assert exemplars is None


def test_each_request_counts_in_its_own_method_and_status_series():
    """record keeps the series of the last request to skip the dict: requests that change method or status (back
    and forth) must each still count in their own series, as ingress-nginx's per method and status labels do."""
    stats = RouteStats(LABELS)
    requests = [(b"GET", 200), (b"GET", 200), (b"POST", 200), (b"GET", 404), (b"GET", 200), (b"POST", 200),
                (b"GET", 404), (b"HEAD", 200)]
    for method, status in requests:
        stats.record(method, status, 0.001, 0.0005, 1, 2, 0)
    counts = {(method, status): (requests_, received) for method, status, requests_, received, *_ in stats.snapshot()}
    assert counts == {("GET", 200): (3, 3), ("POST", 200): (2, 2), ("GET", 404): (2, 2), ("HEAD", 200): (1, 1)}
