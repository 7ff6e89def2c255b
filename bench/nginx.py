"""nginx for the benchmark: the backend (fixed bodies, uploads read and discarded) and the reference proxy.

Each instance gets its own prefix folder (config, pid file, error log, temp paths), runs in the
foreground (`daemon off`, so the harness owns the master by its pid) and never touches a system
nginx. The reference proxy is the issue's: one worker, `proxy_pass` to an upstream with
`keepalive 64`, HTTP/1.1, `Connection ""`, access log off; everything else Debian's default.
"""

from __future__ import annotations

import os
import resource
import subprocess
import time
from dataclasses import dataclass

from bench.backend import LARGE_BODY, SMALL_BODY, UPLOAD_REPLY
from bench.processes import Process, ProcessGroup, StartError, children, wait_for_port

# nginx's worker_connections counts client and upstream connections: room for the idle scenario,
# within the hard RLIMIT_NOFILE (an unprivileged or containerized master cannot raise it).
_HARD_NOFILE = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
NOFILE = 50000 if _HARD_NOFILE == resource.RLIM_INFINITY else min(50000, _HARD_NOFILE)
WORKER_CONNECTIONS = max(1024, NOFILE - 100)


@dataclass(frozen=True)
class NginxLayout:
    prefix: str
    conf: str


def _layout(root: str, name: str) -> NginxLayout:
    prefix = os.path.join(root, name)
    os.makedirs(os.path.join(prefix, "logs"), exist_ok=True)
    # Workers may run as "nobody": the folders on the way must be traversable.
    for folder in (root, prefix, os.path.join(prefix, "logs")):
        os.chmod(folder, 0o755)
    return NginxLayout(prefix=prefix, conf=os.path.join(prefix, "nginx.conf"))


def _common(layout: NginxLayout, *, workers: int, keepalive_timeout: float | None) -> str:
    temp = "\n".join(f"    {kind}_temp_path {layout.prefix}/{kind}_temp;"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    keepalive = f"    keepalive_timeout {int(keepalive_timeout)}s;\n" if keepalive_timeout else ""
    return f"""daemon off;
worker_processes {workers};
worker_rlimit_nofile {NOFILE};
pid {layout.prefix}/nginx.pid;
error_log {layout.prefix}/logs/error.log warn;
events {{
    worker_connections {WORKER_CONNECTIONS};
}}
http {{
    access_log off;
    default_type application/octet-stream;
{temp}
{keepalive}"""


def _nginx_string(body: bytes) -> str:
    return body.decode("ascii").replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def backend_config(root: str, *, ports: list[int], workers: int = 1) -> NginxLayout:
    """The backend: `/64k` a 64 KiB file, `POST /upload` read and discarded, anything else 100 bytes."""
    layout = _layout(root, "backend")
    www = os.path.join(layout.prefix, "www")
    os.makedirs(www, exist_ok=True)
    os.chmod(www, 0o755)
    with open(os.path.join(www, "64k"), "wb") as out:
        out.write(LARGE_BODY)
    os.chmod(os.path.join(www, "64k"), 0o644)
    with open(os.path.join(www, "upload"), "wb") as out:  # exists, so POST to it is a 405 (not a 404)
        out.write(UPLOAD_REPLY)
    os.chmod(os.path.join(www, "upload"), 0o644)
    listens = "\n".join(f"        listen 127.0.0.1:{port};" for port in ports)
    text = _common(layout, workers=workers, keepalive_timeout=600) + f"""    sendfile on;
    tcp_nopush on;
    # The proxies under test pool their connections: never make them reconnect.
    keepalive_requests 100000000;
    server {{
{listens}
        location / {{
            return 200 "{_nginx_string(SMALL_BODY)}";
        }}
        location = /64k {{
            root {www};
        }}
        # Answer only after the whole body is read (a bare `return` answers at once and discards the body
        # afterwards): mirror_request_body reads it first; the static handler then refuses POST (405),
        # which error_page turns into 200 "ok".
        location = /upload {{
            client_max_body_size 64m;
            client_body_buffer_size 2m;
            mirror /discard;
            mirror_request_body on;
            root {www};
            error_page 405 =200 @uploaded;
        }}
        location = /discard {{
            internal;
            return 204;
        }}
        location @uploaded {{
            return 200 "{_nginx_string(UPLOAD_REPLY)}";
        }}
    }}
}}
"""
    with open(layout.conf, "w", encoding="utf-8") as out:
        out.write(text)
    return layout


def proxy_config(root: str, *, port: int, backend_port: int, workers: int = 1,
                 keepalive_timeout: float | None = None, directives: tuple[str, ...] = ()) -> NginxLayout:
    """The reference proxy of the issue. `client_max_body_size` is raised so 1 MiB uploads are accepted;
    `directives` go into its location (e.g. "proxy_request_buffering off")."""
    layout = _layout(root, "reference")
    extra = "".join(f"            {d.strip().rstrip(';')};\n" for d in directives)
    text = _common(layout, workers=workers, keepalive_timeout=keepalive_timeout) + f"""    upstream backend {{
        server 127.0.0.1:{backend_port};
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 64m;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
{extra}        }}
    }}
}}
"""
    with open(layout.conf, "w", encoding="utf-8") as out:
        out.write(text)
    return layout


def _error_log(layout: NginxLayout) -> str:
    """Passed with -e too: nginx opens its error log before reading the config."""
    return os.path.join(layout.prefix, "logs", "error.log")


def check_config(nginx: str, layout: NginxLayout) -> None:
    """`nginx -t` on a generated config; raises StartError with nginx's message."""
    result = subprocess.run([nginx, "-t", "-q", "-p", layout.prefix, "-e", _error_log(layout), "-c", layout.conf],
                            capture_output=True, text=True, timeout=30, check=False)
    if result.returncode != 0:
        raise StartError(f"nginx -t failed for {layout.conf}:\n{result.stderr}")


def start(group: ProcessGroup, nginx: str, layout: NginxLayout, *, name: str, port: int,
          timeout: float = 20.0) -> Process:
    """Run nginx in the foreground; ready when `port` accepts. Its workers are what RSS/CPU measure."""
    process = group.start(name, [nginx, "-p", layout.prefix, "-e", _error_log(layout), "-c", layout.conf])
    wait_for_port("127.0.0.1", port, timeout=timeout, process=process)
    # The master listens before it forks its workers: the port can accept while there is no worker yet, and the
    # master alone would be measured (0% CPU). Wait (bounded) for the workers.
    deadline = time.monotonic() + min(timeout, 10.0)
    workers = children(process.pid)
    while not workers and time.monotonic() < deadline:
        time.sleep(0.01)
        workers = children(process.pid)
    process.measured = workers or [process.pid]
    return process
