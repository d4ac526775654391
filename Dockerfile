# The emulator as a container image, built from this source tree:
#
#   docker build -t replicate-flux-emulator .
#   docker run --rm -p 127.0.0.1:8000:8000 replicate-flux-emulator
#   docker run --rm -p 127.0.0.1:8000:8000 -e MOCK_SERVER_TIME_SCALE=0 replicate-flux-emulator
#
# Every setting is a MOCK_SERVER_* variable (`docker run -e ...`, compose's `environment:`); the
# image sets only where to listen. Other commands: `docker run --rm IMAGE mock-server check`.
# compose.yaml runs two replicas on one Redis behind nginx. Without Docker, tests/docker_steps.py
# performs these steps in a fresh virtual environment (tests/test_docker.py runs it).

# Build stage: the wheel, from the files it is made of (pyproject.toml's wheel target).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md openapi.yaml ./
COPY mock_server/ mock_server/
COPY fixtures/ fixtures/
COPY examples/scenarios.yaml examples/
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /dist .

# Final stage: the wheel and its dependencies only; no source tree, no build tools.
FROM python:3.11-slim
LABEL org.opencontainers.image.title="replicate-flux-emulator" \
      org.opencontainers.image.description="Local emulator of Replicate's predictions API for the FLUX image models"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --gid 10001 emulator \
    && useradd --uid 10001 --gid 10001 --create-home --shell /usr/sbin/nologin emulator
COPY --from=build /dist/ /tmp/dist/
RUN pip install --no-cache-dir --disable-pip-version-check /tmp/dist/replicate_flux_emulator-*.whl
USER 10001:10001
WORKDIR /home/emulator

# Inside the container only, the server listens on every interface (the default, 127.0.0.1,
# would be unreachable from outside it); publish it on the host's loopback as above.
ENV MOCK_SERVER_HOST=0.0.0.0 \
    MOCK_SERVER_PORT=8000
EXPOSE 8000

# GET /__admin/health on the container's own port, with the admin token and over HTTPS when the
# server is set up so (no curl in slim images: Python's urllib; a non-2xx answer raises).
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, ssl, urllib.request as u; e = os.environ.get; t = e('MOCK_SERVER_ADMIN_TOKEN'); s = 'https' if (e('MOCK_SERVER_TLS') or '').lower() in ('1', 'true', 'yes', 'on') or e('MOCK_SERVER_TLS_CERT') else 'http'; u.urlopen(u.Request(s + '://127.0.0.1:' + (e('MOCK_SERVER_PORT') or '8000') + '/__admin/health', headers={'Authorization': 'Bearer ' + t} if t else {}), timeout=2, context=ssl._create_unverified_context())"]

# SIGTERM (docker stop) lets requests in flight finish, then the server exits.
CMD ["mock-server"]
