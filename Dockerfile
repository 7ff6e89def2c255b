# pyngress: slim Python base, non-root user, `pyngress` as entrypoint.
# Builder stage: a wheel with the request path compiled (Cython from PyPI in pip's isolated build, gcc here), and
# the wheels of the dependencies; the runtime stage installs them without a compiler. The build fails when the wheel
# lacks the compiled hot path or the native TLS transport (the image's `--tls-transport auto` would quietly use asyncio).
FROM python:3.11-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY proxy ./proxy
RUN pip wheel --no-cache-dir --wheel-dir /wheels . \
 && python -c "import glob, zipfile, sys; names = zipfile.ZipFile(glob.glob('/wheels/pyngress-*.whl')[0]).namelist(); \
so = [n for n in names if n.endswith('.so')]; \
missing = [what for what, prefix in (('compiled hot path', 'proxy/http/'), ('native TLS transport', 'proxy/tls/_native.')) \
           if not any(n.startswith(prefix) for n in so)]; \
sys.exit('the pyngress wheel lacks the ' + ' and the '.join(missing) if missing else 0)"

FROM python:3.11-slim
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/*.whl && rm -rf /wheels
# 65532 is the conventional "nonroot" uid; the Deployment also sets runAsNonRoot.
RUN useradd --system --uid 65532 --no-create-home --shell /usr/sbin/nologin pyngress
USER 65532:65532
# 8080 http, 8443 https, 10254 admin (healthz, readyz, metrics), as ingress-nginx.
EXPOSE 8080 8443 10254
ENTRYPOINT ["pyngress"]
