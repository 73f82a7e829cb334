# pylsyncd as a Docker sidecar: `docker build -t pylsyncd .`, then see examples/ and README.
#
# Two stages: the build one has pip and the setuptools it fetches; the image keeps Debian's python3,
# rsync, tini and a venv holding pylsyncd alone.

FROM debian:bookworm-slim AS build
# pip reads it from the environment: a builder without PyPI points pip at its own index.
ARG PIP_INDEX_URL
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3-venv \
    && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md /build/
COPY src /build/src
RUN python3 -m venv /opt/pylsyncd \
    && /opt/pylsyncd/bin/pip install --no-cache-dir --disable-pip-version-check /build \
    && /opt/pylsyncd/bin/pip uninstall --yes --quiet pip setuptools

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 rsync tini \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/pylsyncd /opt/pylsyncd
# SHUTDOWN_GRACE below docker stop's 10 s: pending changes are applied and the daemon exits 0
# before the engine would SIGKILL it. Raise both together (compose: stop_grace_period).
ENV PATH=/opt/pylsyncd/bin:$PATH \
    STATUS_FILE=/run/pylsyncd/status.json \
    SHUTDOWN_GRACE=8
STOPSIGNAL SIGTERM
# STATE_DIR's default: what the two sides of a two-way pair last agreed on. A volume, so a
# restarted container keeps it; name it in compose (examples/two-way) to keep it across a
# recreate or `down`. Without it, the next start is a union merge that deletes nothing.
RUN mkdir -p /var/lib/pylsyncd
VOLUME ["/var/lib/pylsyncd"]
# Healthy once every pair has finished its initial sync: compose's `condition: service_healthy`
# starts the app then. A failing probe counts only after the start period, so a long first sync
# is "starting", not "unhealthy" (which would make compose give up on the app).
# The probe starts no Python (80 ms of CPU every 2 s, forever, on an idle sidecar): it checks the
# marker the daemon keeps fresh while healthy, and once healthy it watches it for a minute before
# answering again (docker/healthcheck.sh says why); hence the timeout above that minute. Until
# then probes are cheap and come every second: healthy within a second of the initial sync.
COPY docker/healthcheck.sh /usr/local/bin/pylsyncd-healthcheck
HEALTHCHECK --interval=1s --timeout=90s --start-period=10m --retries=3 \
    CMD ["/usr/local/bin/pylsyncd-healthcheck"]
# tini as PID 1 forwards SIGTERM to pylsyncd and reaps whatever rsync leaves behind.
ENTRYPOINT ["/usr/bin/tini", "--", "pylsyncd"]
