# pyngress: slim Python base, non-root user, `pyngress` as entrypoint.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY proxy ./proxy
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
COPY --from=build /install /usr/local
# 65532 is the conventional "nonroot" uid; the Deployment also sets runAsNonRoot.
RUN useradd --system --uid 65532 --no-create-home --shell /usr/sbin/nologin pyngress
USER 65532:65532
# 8080 http, 8443 https, 10254 admin (healthz, readyz, metrics), as ingress-nginx.
EXPOSE 8080 8443 10254
ENTRYPOINT ["pyngress"]
