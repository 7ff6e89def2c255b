"""examples/demo.py works as the README says: pods up, pyngress in front, curl lines answer, Ctrl-C stops."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import sys

import aiohttp
import pytest

from e2e_harness import ROOT, START_TIMEOUT


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _stops_on_ctrl_c(process: asyncio.subprocess.Process, output: list[str]) -> None:
    """SIGINT (Ctrl-C) to the demo: it drains and exits 0 within 30 s."""
    process.send_signal(signal.SIGINT)
    assert process.stdout is not None
    async with asyncio.timeout(30):
        rest = await process.stdout.read()
        assert await process.wait() == 0, "".join(output) + rest.decode()


async def test_demo_answers_and_stops_on_ctrl_c():
    gateway_port = _free_port()  # the Gateway listener (port 80) lands on 80 + offset
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "examples" / "demo.py"), "--http-port", "0", "--admin-port", "0",
        "--https-port", "0", "--gateway-port-offset", str(gateway_port - 80),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=ROOT)
    output: list[str] = []
    try:
        async with asyncio.timeout(START_TIMEOUT):
            while True:
                raw = await process.stdout.readline()
                if not raw:
                    break
                output.append(raw.decode())
                if raw.startswith(b"pyngress listening"):
                    break
        text = "".join(output)
        if "cannot start demo pod" in text:
            pytest.skip("the demo's fixed pod ports are in use on this machine")
        found = re.search(r"http=(\S+) .*admin=(\S+)", output[-1])  # the listening line itself
        assert found, text
        http, admin = found.groups()
        pods = []
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session:
            for _ in range(2):
                async with session.get(f"http://{http}/echo", headers={"Host": "demo.local"}) as response:
                    assert response.status == 200
                    pods.append((await response.json())["pod"])
            async with session.get(f"http://{http}/api/v1/status") as response:
                assert (await response.json())["pod"] in ("echo-1", "echo-2")
            async with session.get(f"http://{http}/anything", headers={"Host": "demo.local"}) as response:
                assert (await response.json())["pod"] == "hello-1"
            async with session.get(f"http://{admin}/readyz") as response:
                assert response.status == 200
            # examples/gateway: the HTTPRoute on its own listener port
            gateway = f"http://127.0.0.1:{gateway_port}"
            shop = {"Host": "shop.gateway.local"}
            async with session.get(f"{gateway}/", headers={**shop, "X-Canary": "yes"}) as response:
                assert (await response.json())["pod"] == "hello-1"
            async with session.get(f"{gateway}/old/page", headers=shop, allow_redirects=False) as response:
                assert response.status == 301 and response.headers["Location"].endswith("/new/page")
            async with session.get(f"{gateway}/x", headers=shop) as response:
                assert response.status == 200 and response.headers["X-Route"] == "shop"
        assert sorted(pods) == ["echo-1", "echo-2"]
        await _stops_on_ctrl_c(process, output)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_demo_on_another_http_port_serves_the_gateway_routes_there_too():
    """README: `examples/demo.py --http-port 9080` moves the demo: the Gateway's listener (port 80, served at
    80 + --gateway-port-offset) follows the Ingress listener to the port asked for, as 8080 shares both by default."""
    http_port = _free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "examples" / "demo.py"), "--http-port", str(http_port), "--admin-port", "0",
        "--https-port", "0", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=ROOT)
    output: list[str] = []
    try:
        async with asyncio.timeout(START_TIMEOUT):
            while True:  # up to the end of the printed curl lines
                raw = await process.stdout.readline()
                if not raw:
                    break
                output.append(raw.decode())
                if b"Ctrl-C stops" in raw:
                    break
        text = "".join(output)
        if "cannot start demo pod" in text:
            pytest.skip("the demo's fixed pod ports are in use on this machine")
        assert f"http=127.0.0.1:{http_port}" in text, text
        assert f"-H 'X-Canary: yes' http://127.0.0.1:{http_port}/" in text, text  # the printed lines say so too
        shop = {"Host": "shop.gateway.local"}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session:
            async with session.get(f"http://127.0.0.1:{http_port}/", headers={**shop, "X-Canary": "yes"}) as response:
                assert response.status == 200 and (await response.json())["pod"] == "hello-1"
            async with session.get(f"http://127.0.0.1:{http_port}/echo", headers={"Host": "demo.local"}) as response:
                assert response.status == 200 and (await response.json())["pod"] in ("echo-1", "echo-2")
        await _stops_on_ctrl_c(process, output)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
