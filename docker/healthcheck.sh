#!/bin/sh
# The image's HEALTHCHECK. It starts no Python: the daemon keeps "$STATUS_FILE.healthy" while
# `pylsyncd health` would pass (default --failing-for) and touches it at least every 10 s; a
# marker older than 30 s is a hung or dead daemon's.
#
# Docker's exec of a probe costs about 30 ms of CPU in the container whatever the probe (runc
# joins the container first: `true` costs as much as this script), so a probe every 2 s would
# keep an idle sidecar at 1.5 % of a core. Instead, a probe that finds the daemon healthy and had
# said so before does not answer at once: it watches the marker for up to PROBE_WATCH_FOR
# seconds, looking every PROBE_STEP, and says "unhealthy" as soon as the marker is gone or stale.
# The first healthy answer after a start, or after a failure, is immediate, so `service_healthy`
# still follows the initial sync within the 1 s interval (probes are cheap until then).
#
# "$STATUS_FILE.healthy.reported" means: the marker has been there since our last healthy
# answer. The daemon removes it with the marker (at its start, and when a rule breaks).
set -u
marker="$STATUS_FILE.healthy"
reported="$marker.reported"
watch_for=${PROBE_WATCH_FOR:-60}
step=${PROBE_STEP:-15}

fresh() {
    [ -n "$(find "$marker" -mmin -0.5 2>/dev/null)" ]
}

unhealthy() {
    rm -f "$reported"
    echo "unhealthy: $1; pylsyncd status says why"
    exit 1
}

fresh || unhealthy "no fresh $marker"
if [ -e "$reported" ]; then
    waited=0
    while [ "$waited" -lt "$watch_for" ]; do
        sleep "$step"
        waited=$((waited + step))
        fresh || unhealthy "no fresh $marker"
    done
fi
: >"$reported"
# The daemon may have removed marker and flag since the first look (a stop): answer for now.
fresh || unhealthy "no fresh $marker"
echo healthy
