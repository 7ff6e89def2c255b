"""Micro-benchmarks of the routing hot spots, in plain timing (outside the test suite's pass/fail).

    python -m bench.micro            # lookups on a 10,000-Ingress table, builds of 10/1,000/10,000
    python -m bench.micro --quick    # smaller counts, a few seconds

Lookup: `RouteTable.match(host, path)` over 1,000 (host, path) pairs spread over the table, for
path depths 1-8, hits (Exact, Prefix) and misses (unknown path on a known host, unknown host),
on the 10- and the 10,000-Ingress table (cost should not depend on the table size). Reported in
ns per lookup with the bare loop's cost subtracted; `+normalize` adds normalize_host and
normalize_path, i.e. the whole per-request routing cost. Build: `build(snapshot, settings)` for
the same generated objects `python -m bench` writes as manifests, in ms (min and median).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence

from bench.manifests import TableShape, objects, table_host
from proxy.routing.build import build
from proxy.routing.model import Config
from proxy.routing.paths import normalize_path
from proxy.routing.table import normalize_host
from proxy.settings import Settings

BACKEND = [("127.0.0.1", 8080)]


def build_config(ingresses: int) -> Config:
    return build(objects(TableShape(ingresses=ingresses), backend=BACKEND).snapshot(), Settings())


def lookup_cases(shape: TableShape, *, count: int = 1000) -> dict[str, list[tuple[str, str]]]:
    """Named lists of (host, path); every case visits `count` Ingresses spread over the table."""
    step = max(1, shape.ingresses // count)
    picks = [(i * step) % shape.ingresses for i in range(count)]

    def pairs(path: Callable[[int], str], host: Callable[[int], str] | None = None) -> list[tuple[str, str]]:
        return [((host or (lambda i: table_host(i // shape.ingresses_per_host)))(i), path(i)) for i in picks]

    return {
        "exact hit /appN/health": pairs(lambda i: f"/app{i}/health"),
        "prefix hit depth 2 /appN/api": pairs(lambda i: f"/app{i}/api"),
        "prefix hit depth 4": pairs(lambda i: f"/app{i}/api/v1/items"),
        "prefix hit depth 8": pairs(lambda i: f"/app{i}/api/v1/a/b/c/d/e"),
        "miss, known host, depth 1": pairs(lambda i: "/nothing"),
        "miss, known host, depth 6": pairs(lambda i: "/no/such/path/at/all"),
        "miss, unknown host": pairs(lambda i: f"/app{i}/api", host=lambda i: f"unknown{i}.example.org"),
    }


def _loop_ns(pairs: Sequence[tuple[str, str]], call: Callable[[str, str], object], *, seconds: float) -> float:
    """ns per call over repeated passes lasting about `seconds`; the GC is off while timing."""
    passes = 0
    enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        deadline = start + int(seconds * 1e9)
        while True:
            for host, path in pairs:
                call(host, path)
            passes += 1
            now = time.perf_counter_ns()
            if now >= deadline:
                break
    finally:
        if enabled:
            gc.enable()
    return (now - start) / (passes * len(pairs))


def _noop(host: str, path: str) -> None:
    return None


def lookups(ingresses: int, *, seconds: float) -> dict[str, dict[str, float]]:
    config = build_config(ingresses)
    table = config.table
    shape = TableShape(ingresses=ingresses)
    overhead = _loop_ns(lookup_cases(shape)["exact hit /appN/health"], _noop, seconds=seconds)

    def full(host: str, path: str) -> object:
        normalized = normalize_path(path)
        return table.match(normalize_host(host), normalized) if normalized is not None else None

    results: dict[str, dict[str, float]] = {}
    for name, pairs in lookup_cases(shape).items():
        hit = sum(table.match(h, p) is not None for h, p in pairs)
        match_ns = _loop_ns(pairs, table.match, seconds=seconds) - overhead
        full_ns = _loop_ns(pairs, full, seconds=seconds) - overhead
        results[name] = {"match_ns": match_ns, "with_normalize_ns": full_ns, "hits": hit, "lookups": len(pairs)}
    results["(bare loop, subtracted)"] = {"match_ns": overhead, "with_normalize_ns": overhead, "hits": 0,
                                         "lookups": 0}
    return results


def builds(sizes: Sequence[int], *, repeat: int) -> dict[int, dict[str, float]]:
    results: dict[int, dict[str, float]] = {}
    for size in sizes:
        snapshot = objects(TableShape(ingresses=size), backend=BACKEND).snapshot()
        settings = Settings()
        times = []
        config = None
        runs = repeat if size <= 1000 else max(1, repeat // 3)
        for _ in range(runs):
            gc.collect()
            start = time.perf_counter()
            config = build(snapshot, settings)
            times.append((time.perf_counter() - start) * 1000)
        assert config is not None
        routes = sum(1 for _ in config.table.routes())
        results[size] = {"min_ms": min(times), "median_ms": statistics.median(times), "runs": runs,
                         "routes": routes, "hosts": len(config.table.hosts), "warnings": len(config.warnings)}
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.micro", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter timings and smaller tables")
    parser.add_argument("--json", default="", metavar="FILE", help="also write the numbers here")
    args = parser.parse_args(argv)
    seconds = 0.05 if args.quick else 0.3
    sizes = (10, 1000) if args.quick else (10, 1000, 10000)
    out: dict[str, object] = {"python": sys.version.split()[0]}

    print("route lookup (ns per lookup; bare loop cost subtracted)")
    print(f"  {'case':<32} {'10 Ingresses':>14} {'10,000 Ingr.':>14} {'10,000 +normalize':>18}")
    small = lookups(10, seconds=seconds)
    big = lookups(1000 if args.quick else 10000, seconds=seconds)
    for name in big:
        print(f"  {name:<32} {small[name]['match_ns']:>14.0f} {big[name]['match_ns']:>14.0f} "
              f"{big[name]['with_normalize_ns']:>18.0f}   hits {big[name]['hits']}/{big[name]['lookups']}")
    out["lookup"] = {"10": small, "large": big}

    print("\nbuild() (ms)")
    built = builds(sizes, repeat=3 if args.quick else 9)
    for size, figures in built.items():
        print(f"  {size:>6} Ingresses ({figures['routes']:>6} routes, {figures['hosts']:>5} hosts): "
              f"min {figures['min_ms']:8.1f}  median {figures['median_ms']:8.1f}  ({figures['runs']} runs, "
              f"{figures['warnings']} warnings)")
    out["build"] = built
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(out, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
