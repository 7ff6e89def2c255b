"""bench.tls_transport (issue #14's TLS transport experiment): its listeners and its --micro timings work.

No timing is asserted: the numbers are the bench's; these check that each variant serves real TLS and resumes.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root: the bench package

from bench.processes import ProcessGroup
from bench.tls import REQUEST, check_server, make_certificate
from bench.tls_transport import _READY, SERVERS
from proxy.tls.native import available

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(60)


# `native` needs the compiled module (scripts/build-inplace); in pure-Python runs it has nothing to start.
SERVERS_HERE = [mode for mode in SERVERS if mode != "native" or available()[0]]


@pytest.mark.parametrize("mode", SERVERS_HERE)
def test_tls_transport_servers_answer_and_resume(tmp_path: Path, mode: str) -> None:
    """bench.tls_transport's listeners (issue #14 experiment): each presents the certificate and answers s_time's
    request over real TLS, and a TLS 1.2 client resumes its session with the ticket it got (what the resumed
    loads measure). No timing is asserted."""
    cert, key, cert_pem, _ = make_certificate("ecdsa", str(tmp_path / "certs"))
    with ProcessGroup(str(tmp_path)) as group:
        process = group.start(mode, [sys.executable, "-m", "bench.tls_transport", "--serve", mode, "--cert", cert,
                                     "--key", key], cwd=str(REPO))
        port = int(process.wait_line(_READY, timeout=30)[1])
        check_server(port, cert_pem=cert_pem, label=mode)
        client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client.check_hostname = False
        client.verify_mode = ssl.CERT_NONE
        client.maximum_version = ssl.TLSVersion.TLSv1_2
        session = None
        for attempt in range(2):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
                    client.wrap_socket(raw, session=session) as tls:
                assert tls.session_reused == (attempt == 1)
                tls.sendall(REQUEST)
                answer = b""
                while chunk := tls.recv(65536):
                    answer += chunk
                assert answer.startswith(b"HTTP/1.1 200")
                session = tls.session


def test_tls_transport_micro_runs() -> None:
    """`python -m bench.tls_transport --micro N`: each per-connection step timed (a positive µs figure each)."""
    done = subprocess.run([sys.executable, "-m", "bench.tls_transport", "--micro", "50"], cwd=REPO,
                          capture_output=True, text=True, timeout=55, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if "µs" in line]
    assert len(lines) == 6 and any("SSLWantReadError" in line for line in lines), done.stdout
