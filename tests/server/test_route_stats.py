"""RouteStats.record: what one finished request adds to its (method, status) series (the per-route metrics that
/metrics renders as pyngress_request_duration_seconds and friends)."""

from __future__ import annotations

from bisect import bisect_left

from proxy.stats import DURATION_BUCKETS, RouteStats

LABELS = ("shop", "web", "shop.example", "/", "web", "Ingress")


def test_durations_fall_in_the_buckets_bisect_gives():
    """The first bucket is taken without a call (the usual request); every other duration, the bucket boundaries
    themselves included (le: an observation equal to a bound counts in that bucket), and one inside each bucket,
    lands where bisect puts it (stats.bucket compares with literal bounds: this keeps them equal to
    DURATION_BUCKETS, ingress-nginx's request-time buckets)."""
    stats = RouteStats(LABELS)
    bounds = (0.0, *DURATION_BUCKETS)
    between = [(low + high) / 2 for low, high in zip(bounds, bounds[1:])]  # one duration inside every bucket
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
    assert (method, status, requests, received, sent, retries) == ("GET", 200, len(durations) + 1, 10 * (len(durations) + 1),
                                                                20 * (len(durations) + 1), 1)
    assert abs(duration_sum - (sum(durations) + 0.002)) < 1e-9 and abs(upstream_sum - sum(durations)) < 1e-9
    assert exemplars is None
