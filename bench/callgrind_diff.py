"""Per-function self cost of two callgrind dumps, per request, and where they differ:

    python -m bench.instructions --tracing --only-tracing --ratios 0 --requests 2000 --seeds 1 --keep-dumps DIR
    python -m bench.callgrind_diff DIR/callgrind.ingress.seed1.out.1 DIR/callgrind.tracing-0.seed1.out.1 2000

(the counted window's dumps are the `*.out.1` files). Reads the dump format itself: a function's cost lines are its
own instructions, while the line after a `calls=` line is the inclusive cost of that call, which is skipped (summing
those is what makes a call-graph listing say nothing about what one change costs). Functions are named with their
object file, inlined files folded into the function. On this box string hashes and object addresses move the
type attribute cache's collisions between runs (`find_name_in_mro`, `_Py_dict_lookup`, `_PyType_Lookup` shift by a
few hundred instructions per request either way): read those rows as noise unless they move in every pair.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from collections.abc import Sequence

_NAMED = re.compile(r"(c?(?:fn|ob))=\((\d+)\)(?: (.*))?")


def self_costs(path: str) -> dict[str, int]:
    """Instructions spent in each function itself ("name [object file]")."""
    names: dict[str, str] = {}
    objects: dict[str, str] = {}
    costs: dict[str, int] = defaultdict(int)
    function = ""
    current_object = ""
    skip = False
    with open(path, encoding="utf-8", errors="replace") as dump:
        for line in dump:
            if skip:  # the inclusive cost of the call named on the line before
                skip = False
                continue
            first = line[:1]
            if first.isdigit() or first in "+-*":
                if function:
                    fields = line.split()
                    if len(fields) >= 2:
                        costs[function] += int(fields[-1])
                continue
            if line.startswith("calls="):
                skip = True
                continue
            named = _NAMED.match(line.rstrip("\n"))
            if named is None:
                continue
            kind, key, text = named.groups()
            table = objects if kind.endswith("ob") else names
            if text:
                table[key] = text.rsplit("/", 1)[-1] if table is objects else text
            if kind == "ob":
                current_object = objects.get(key, "?")
            elif kind == "fn":
                function = f"{names.get(key, '?')} [{current_object}]"
    return dict(costs)


def diff(before: dict[str, int], after: dict[str, int], requests: int) -> list[tuple[float, str, float, float]]:
    """(after - before, function, before, after) per request, largest increase first."""
    rows = [((after.get(name, 0) - before.get(name, 0)) / requests, name, before.get(name, 0) / requests,
             after.get(name, 0) / requests) for name in set(before) | set(after)]
    return sorted(rows, reverse=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.callgrind_diff", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("requests", type=int, help="requests in each counted window")
    parser.add_argument("--rows", type=int, default=40, help="largest increases shown (and half as many decreases)")
    args = parser.parse_args(argv)
    before, after = self_costs(args.before), self_costs(args.after)
    total_before, total_after = sum(before.values()) / args.requests, sum(after.values()) / args.requests
    print(f"self cost per request: {total_before:,.1f} -> {total_after:,.1f} ({total_after - total_before:+,.1f})")
    rows = diff(before, after, args.requests)
    for change, name, was, now in rows[: args.rows]:
        print(f"{change:+9.1f} {was:10.1f} {now:10.1f}  {name}")
    print("...")
    for change, name, was, now in reversed(rows[-(args.rows // 2):]):
        print(f"{change:+9.1f} {was:10.1f} {now:10.1f}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
