"""HTTP/2 through the real `pyngress` process, with curl as the client: h2 by ALPN on the HTTPS port (the
default certificate), h2c with prior knowledge on the HTTP port, and `--no-http2` back to HTTP/1.1.

ingress-nginx: `use-http2` (default true) "enables or disables HTTP/2 support in secure connections"
(docs/user-guide/nginx-configuration/configmap.md); pyngress's switch is the flag `--[no-]http2`.
"""

from __future__ import annotations

import asyncio
import shutil

import pytest

from e2e_harness import DEADLINE, INGRESS_CLASS, ingress, service

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


async def curl(*args: str) -> tuple[str, str]:
    """(HTTP version curl used, body); curl's own failures fail the test."""
    process = await asyncio.create_subprocess_exec(
        "curl", "-sS", "-k", "-o", "-", "-w", "\n%{http_version}", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), DEADLINE)
    assert process.returncode == 0, err
    body, _, version = out.decode().rpartition("\n")
    return version, body


async def site(echo_pods, manifests) -> None:
    [pod] = await echo_pods.replicas(("web-1", "127.0.0.2"))
    manifests.write("class.yaml", INGRESS_CLASS)
    manifests.write("web.yaml", service("web", pods=[pod]))
    manifests.write("ingress.yaml", ingress("web", host="h2.test", paths=[("/", "Prefix", "web", 80)]))


async def test_http2_by_alpn_and_prior_knowledge(echo_pods, manifests, pyngress):
    await site(echo_pods, manifests)
    proc = await pyngress(manifests.path)
    https, http = proc.ports["https"], proc.ports["http"]
    version, body = await curl("--http2", "--resolve", f"h2.test:{https}:127.0.0.1", f"https://h2.test:{https}/a")
    assert version == "2" and '"web-1"' in body
    version, body = await curl("--http2-prior-knowledge", "-H", "Host: h2.test", f"http://127.0.0.1:{http}/b")
    assert version == "2" and '"web-1"' in body
    version, _ = await curl("--http1.1", "--resolve", f"h2.test:{https}:127.0.0.1", f"https://h2.test:{https}/c")
    assert version == "1.1"


async def test_no_http2_keeps_http11(echo_pods, manifests, pyngress):
    await site(echo_pods, manifests)
    proc = await pyngress(manifests.path, "--no-http2")
    https = proc.ports["https"]
    version, body = await curl("--http2", "--resolve", f"h2.test:{https}:127.0.0.1", f"https://h2.test:{https}/a")
    assert version == "1.1" and '"web-1"' in body
