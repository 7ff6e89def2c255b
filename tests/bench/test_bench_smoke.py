"""Smoke test of the benchmark harness's plumbing (no timing assertions, no wrk needed).

The manifest generator feeds build() and a real pyngress process; the Python fallback
backend answers through pyngress; endpoint churn and a manifest change go through file mode.
nginx and wrk parts are skipped when they are not installed.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root: the bench package

from bench import manifests, nginx
from bench.backend import LARGE_BODY, SMALL_BODY
from bench.client import fetch_many
from bench.load import Request, lua_script, p99_parts, parse_output, run_wrk
from bench.processes import ProcessGroup, free_port, start_pyngress, which
from bench.scenarios import Churner, propagation
from proxy.routing.build import build
from proxy.settings import Settings

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(60)


def test_generated_table_builds_every_route() -> None:
    shape = manifests.TableShape(ingresses=20)
    objs = manifests.objects(shape, backend=[("127.0.0.1", 9)])
    config = build(objs.snapshot(), Settings())
    assert not config.warnings, [str(w) for w in config.warnings]
    assert sum(1 for _ in config.table.routes()) == shape.paths + 2  # + bench.local "/" and the probe path
    assert len(config.table.hosts) == shape.hosts + 2
    for host, path in manifests.table_requests(shape, count=40):
        route = config.table.match(host, path)
        assert route is not None and route.host == host, (host, path)
    assert config.table.match("h0.bench.local", "/nowhere") is None


def test_written_folder_is_kind_lists(tmp_path: Path) -> None:
    manifests.write_folder(str(tmp_path), manifests.objects(manifests.TableShape(ingresses=4),
                                                            backend=[("127.0.0.1", 9)]))
    names = sorted(os.listdir(tmp_path))
    assert names == sorted([manifests.FILE_CLASS, manifests.FILE_SERVICES, manifests.FILE_ENDPOINTS,
                            manifests.FILE_TABLE_ENDPOINTS, manifests.FILE_INGRESSES, manifests.FILE_PROBE])
    ingresses = json.loads((tmp_path / manifests.FILE_INGRESSES).read_text())
    assert ingresses["kind"] == "List" and len(ingresses["items"]) == 5  # main + 4 table Ingresses


def test_wrk_output_parser_and_script() -> None:
    line = ('BENCHJSON {"requests":1000,"duration_us":2000000,"bytes":250000,"connect":0,"read":2,"write":0,'
            '"status":3,"timeout":1,"p50_us":900,"p90_us":1500,"p99_us":4200,"p999_us":9000,"max_us":12000,'
            '"mean_us":1000.5}')
    result = parse_output("Running 2s test\n" + line + "\nRequests/sec: 500\n", payload_bytes=100)
    assert result.rps == 500 and result.p99_ms == 4.2 and result.mb_per_s == 0.05 and result.mean_ms == 1.0005
    assert result.failed_requests == 6 and not result.error
    assert parse_output("garbage", payload_bytes=1).error
    # p99 2x the reference's = mean 1.6x (Little's law: 0.625x its req/s) x shape 1.25x
    parts = p99_parts({"mean_ms": 1.6, "p99_ms": 5.0}, {"mean_ms": 1.0, "p99_ms": 2.5})
    assert parts == " (mean 1.60x, p99/mean 1.25x the reference's)"
    assert p99_parts({"mean_ms": 0.0, "p99_ms": 5.0}, {"mean_ms": 1.0, "p99_ms": 2.5}) == ""
    script = lua_script(Request(method="POST", body_bytes=10, rotation=(("a.local", "/x"), ("b.local", "/y"))))
    assert 'wrk.method = "POST"' in script and '{"b.local", "/y"}' in script and "done = function" in script


@pytest.fixture
def python_stack(tmp_path: Path):
    """The Python backend (two ports) and pyngress on generated manifests; both stopped afterwards."""
    group = ProcessGroup(str(tmp_path))
    try:
        backend = group.start("backend", [sys.executable, "-m", "bench.backend", "--port", "0", "--port", "0"],
                              cwd=str(REPO))
        match = backend.wait_line(re.compile(r"bench-backend listening 127\.0\.0\.1:(\d+) 127\.0\.0\.1:(\d+)"),
                                  timeout=20)
        ports = [int(match[1]), int(match[2])]
        folder = str(tmp_path / "manifests")
        manifests.write_folder(folder, manifests.objects(None, backend=[("127.0.0.1", ports[0])]))
        process, address, _ = start_pyngress(group, manifests=folder, timeout=30)
        yield group, ports, folder, process, address
    finally:
        group.close()
    assert process.popen.returncode is not None  # stopped, by its pid


async def test_python_backend_through_pyngress(python_stack) -> None:
    _, _, _, process, address = python_stack
    small = await fetch_many(address.host, address.http_port, path="/small", host_header=manifests.MAIN_HOST,
                             count=30, connections=3)
    large = await fetch_many(address.host, address.http_port, path="/64k", host_header=manifests.MAIN_HOST,
                             count=10, connections=2)
    uploads = await fetch_many(address.host, address.http_port, method="POST", path="/upload",
                               host_header=manifests.MAIN_HOST, body=b"x" * 65536, count=10, connections=2)
    assert [(a.status, a.body_bytes) for a in small] == [(200, len(SMALL_BODY))] * 30
    assert [(a.status, a.body_bytes) for a in large] == [(200, len(LARGE_BODY))] * 10
    assert [(a.status, a.body_bytes) for a in uploads] == [(200, 3)] * 10
    assert process.rss_kib() and process.cpu_seconds() is not None


async def test_churn_and_change_plumbing(python_stack) -> None:
    _, ports, folder, _, address = python_stack
    with Churner(folder, [[("127.0.0.1", ports[0])], [("127.0.0.1", ports[1])]], rate=50) as churner:
        answers = await fetch_many(address.host, address.http_port, path="/small",
                                   host_header=manifests.MAIN_HOST, count=50, connections=2)
    assert churner.writes > 0
    assert {a.status for a in answers} == {200}
    timed = propagation(address, folder, count=2, jitter=0.0, timeout=8.0)
    assert timed["count"] == 2 and timed["missed"] == 0


def test_nginx_configs_are_valid(tmp_path: Path) -> None:
    program = which("nginx")
    if program is None:
        pytest.skip("nginx is not installed (apt-get install nginx)")
    os.chmod(tmp_path, 0o755)
    backend = nginx.backend_config(str(tmp_path / "nginx"), ports=[free_port(), free_port()])
    reference = nginx.proxy_config(str(tmp_path / "nginx"), port=free_port(), backend_port=free_port())
    nginx.check_config(program, backend)
    nginx.check_config(program, reference)


def test_wrk_against_the_python_backend(tmp_path: Path) -> None:
    program = which("wrk")
    if program is None:
        pytest.skip("wrk is not installed (apt-get install wrk)")
    with ProcessGroup(str(tmp_path)) as group:
        backend = group.start("backend", [sys.executable, "-m", "bench.backend", "--port", "0"], cwd=str(REPO))
        port = int(backend.wait_line(re.compile(r"127\.0\.0\.1:(\d+)"), timeout=20)[1])
        result = run_wrk(program, url=f"http://127.0.0.1:{port}/small", request=Request(path="/small",
                         payload_bytes=len(SMALL_BODY)), duration=1, connections=4, workdir=str(tmp_path),
                         measured=backend)
    assert not result.error, result.error
    assert result.requests > 0 and result.failed_requests == 0
    assert result.rss_end_kib is not None


def test_propagation_bench_runs_both_modes(tmp_path: Path) -> None:
    """`python -m bench.propagation` end to end with a few changes (file mode and the API test double)."""
    import subprocess

    out = tmp_path / "propagation.json"
    done = subprocess.run([sys.executable, "-m", "bench.propagation", "--changes", "5", "--scale-changes", "0",
                           "--max-seconds", "40", "--json", str(out)], cwd=REPO, capture_output=True, text=True,
                          timeout=55, check=False)
    assert done.returncode in (0, 1), done.stdout + done.stderr  # 1: a target missed on a busy box
    results = json.loads(out.read_text())["results"]
    for mode in ("file", "cluster"):
        assert results[mode]["count"] + results[mode]["missed"] == 5, results[mode]
        assert results[mode]["count"] >= 1 and results[mode]["p50_ms"] > 0
    assert results["file"]["source"] in ("inotify", "poll")


def test_grpc_bench_runs_tiny(tmp_path: Path) -> None:
    """`python -m bench.grpc` end to end, tiny and bounded: a real grpcio client over h2c to the grpcio pod, direct
    and through pyngress (an Ingress with backend-protocol GRPC; and nginx's grpc_pass when installed); every call
    must succeed (the bench exits 1 otherwise). No timing is asserted."""
    import subprocess

    out = tmp_path / "grpc.json"
    done = subprocess.run([sys.executable, "-m", "bench.grpc", "--rounds", "1", "--duration", "0.5", "--warmup", "0.1",
                           "--channels", "1", "--concurrency", "2", "--json", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=55, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(out.read_text())["summary"]
    expected = {"direct", "pyngress"} | ({"nginx"} if which("nginx") else set())
    assert set(summary) == expected
    for name, row in summary.items():
        assert row["rps"] > 0 and row["p99_ms"] > 0, (name, row)
    assert "ratio pyngress/nginx" in done.stdout or not which("nginx")


def test_tls_bench_marks_the_resumed_handshake_target_and_profile_parts() -> None:
    """bench.tls: CPU per resumed handshake ≤ 1.5x nginx's (issue #14), from per-CPU-second rates of the same run;
    bench.hotpath_profile: perf's shared-object names sorted into parts."""
    from bench.hotpath_profile import category
    from bench.tls import LOADS, Row, _ratios, targets

    load = LOADS["resumed-1.2"].name
    rows = [Row("ECDSA P-256", load, "nginx", 100.0, 20.0, 6000.0, 1.0),
            Row("ECDSA P-256", load, "pyngress compiled", 80.0, 30.0, 4500.0, 1.0),  # 1.33x the CPU: met
            Row("ECDSA P-256", load, "pyngress pure-python", 80.0, 30.0, 3000.0, 1.0)]  # 2x: missed
    _ratios(rows)
    lines = targets(rows)
    assert len(lines) == 2
    assert "compiled: CPU per handshake 1.33x nginx" in lines[0] and lines[0].endswith(" met")
    assert "pure-python: CPU per handshake 2.00x nginx" in lines[1] and lines[1].endswith("MISSED")
    full = [Row("ECDSA P-256", LOADS["full"].name, "nginx", 1.0, 1.0, 1000.0, None),
            Row("ECDSA P-256", LOADS["full"].name, "pyngress", 1.0, 1.0, 100.0, None)]
    _ratios(full)
    assert targets(full) == []  # full handshakes carry no target
    assert category("exchange.cpython-311-x86_64-linux-gnu.so") == "pyngress compiled: exchange"
    assert category("libpython3.11.so.1.0").startswith("CPython interpreter")
    assert category("loop.cpython-311-x86_64-linux-gnu.so") == "uvloop"
    assert category("[kernel.kallsyms]").startswith("kernel")


def test_instructions_reads_the_admin_port_for_the_span_flush() -> None:
    """bench.instructions flushes spans through the admin port the listening line names (issue #15); a command
    printing no admin port (bench.policy_proxy) still matches, without one."""
    from bench.instructions import _LISTENING

    found = _LISTENING.search("pyngress listening http=127.0.0.1:8080 https=127.0.0.1:8443 admin=127.0.0.1:10254")
    assert found is not None and (found.group("http"), found.group("admin")) == ("8080", "10254")
    found = _LISTENING.search("pyngress listening http=127.0.0.1:8080")
    assert found is not None and found.group("admin") is None


_SPIN = """
import sys, threading, time
def spin():
    end = time.thread_time() + 0.3
    while time.thread_time() < end:
        pass
    print("spun", flush=True)
    sys.stdin.read()  # alive (and counted) until the test closes stdin
if sys.argv[1] == "side":
    worker = threading.Thread(target=spin)
    worker.start()
    worker.join()
else:
    spin()
"""


@pytest.mark.parametrize("where", ["side", "main"])
def test_side_thread_seconds_counts_the_threads_other_than_the_main_one(where: str) -> None:
    import subprocess

    from bench.processes import cpu_seconds, side_thread_seconds

    child = subprocess.Popen([sys.executable, "-c", _SPIN, where], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "spun\n"  # (bounded: the test's timeout)
        side, total = side_thread_seconds(child.pid), cpu_seconds(child.pid)
        assert side is not None and total is not None
        if where == "side":
            assert side >= 0.29  # the spinning thread's 0.3 s of CPU, counted in nanoseconds
        else:
            assert side < 0.05 and total >= 0.29  # the main thread's CPU is not counted
    finally:
        child.communicate(timeout=10)
    assert side_thread_seconds(child.pid) is None  # gone (reaped)
