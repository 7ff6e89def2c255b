"""The table printed at the end of `python -m bench`, and the JSON written beside it."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from bench.scenarios import Row, Target

_COLUMNS = ("scenario", "proxy", "req/s", "p50 ms", "p99 ms", "MB/s", "RSS MiB", "CPU %", "errors", "ratio",
            "p99 x", "notes")


def _cell(value: Any, digits: int = 0) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def table(rows: Sequence[Row]) -> str:
    """Aligned text; `ratio` is throughput against nginx (or the 10-Ingress table), `p99 x` the same for p99."""
    lines = [list(_COLUMNS)]
    for row in rows:
        lines.append([row.scenario, row.proxy, _cell(row.rps), _cell(row.p50_ms, 2), _cell(row.p99_ms, 2),
                      _cell(row.mb_per_s, 1), _cell(row.rss_mib, 1), _cell(row.cpu_percent),
                      _cell(row.errors), _cell(row.ratio, 2), _cell(row.p99_ratio, 2), row.notes])
    widths = [max(len(line[i]) for line in lines) for i in range(len(_COLUMNS) - 1)]
    out = []
    for index, line in enumerate(lines):
        cells = [cell.ljust(widths[i]) if i < 2 else cell.rjust(widths[i]) for i, cell in enumerate(line[:-1])]
        out.append("  ".join([*cells, line[-1]]).rstrip())
        if index == 0:
            out.append("  ".join("-" * w for w in widths) + "  -----")
    return "\n".join(out)


def targets(items: Sequence[Target]) -> str:
    mark = {True: "met", False: "MISSED", None: "n/a"}
    width = max((len(t.text) for t in items), default=0)
    return "\n".join(f"  [{mark[t.met]:>6}] {t.text.ljust(width)}  {t.measured}" for t in items)


def write_json(path: str, *, meta: dict[str, Any], rows: Sequence[Row], target_list: Sequence[Target],
               details: dict[str, Any]) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as out:
        json.dump({"meta": meta, "rows": [asdict(r) for r in rows], "targets": [asdict(t) for t in target_list],
                   "details": details}, out, indent=2, default=str)
        out.write("\n")
