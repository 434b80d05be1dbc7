# flora-mcp, hosted: streamable HTTP at /mcp and legacy SSE at /sse on port 8000.
#
#   docker build -t flora-mcp .
#   docker run -p 8000:8000 -e FLORA_API_KEY -e FLORA_MCP_TOKENS flora-mcp          # one key, bearer tokens
#   docker run -p 8000:8000 flora-mcp --transport http --host 0.0.0.0 --per-user-keys   # each client's own key
#
# Nothing secret is baked in: keys and tokens come from the environment at run time. Without FLORA_MCP_TOKENS or
# --per-user-keys the server refuses to start, since it listens on every interface.

ARG PYTHON_IMAGE=python:3.11-slim

# Build stage: a wheel of flora-mcp, installed with its dependencies into a self-contained virtual environment.
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY flora_mcp ./flora_mcp
RUN python -m pip wheel --no-deps --wheel-dir /wheels .
RUN python -m venv /opt/flora-mcp \
    && /opt/flora-mcp/bin/python -m pip install /wheels/flora_mcp-*.whl \
    && /opt/flora-mcp/bin/flora-mcp --version

# Runtime stage: the virtual environment only, run by an unprivileged user.
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 flora \
    && useradd --system --uid 10001 --gid flora --home-dir /home/flora --create-home --shell /usr/sbin/nologin flora \
    && mkdir -p /data \
    && chown flora:flora /data
COPY --from=build /opt/flora-mcp /opt/flora-mcp
ENV PATH=/opt/flora-mcp/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    FLORA_JOURNAL=/data/runs.sqlite3 \
    FLORA_CATALOG_CACHE=/data/catalog
VOLUME ["/data"]
USER 10001:10001
WORKDIR /home/flora
EXPOSE 8000
# slim images have no curl: probe with the Python that is already there.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["flora-mcp"]
CMD ["--transport", "http", "--host", "0.0.0.0", "--port", "8000"]
