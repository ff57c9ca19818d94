#!/usr/bin/env bash
# Local stack for `make dev`:
#   DynamoDB emulator (moto, single-threaded)  -> 127.0.0.1:$DYNAMODB_PORT
#     (charges capacity as DynamoDB does: GET /_emulator/capacity; throttles per partition
#     key as DynamoDB does, 1,000 write / 3,000 read units a second: on unless
#     DYNAMODB_THROTTLE=0; POST /_emulator/config switches it at runtime)
#   table $TABLE_NAME created on it
#   fault proxy in front of it, the store the functions use -> 127.0.0.1:$DYNAMODB_PROXY_PORT
#     (0: a free port, printed): conflicts modeled as DynamoDB raises them
#     (TransactionConflict between overlapping transactions on an item, a single-item write
#     on an item a transaction holds), no other fault; DYNAMODB_MODEL_CONFLICTS=0 turns it off
#   cargo lambda watch (hot reload, API Gateway HTTP API v2 events) -> 127.0.0.1:$WATCH_PORT
#   stream poller: the table's stream -> the events-dispatcher function, as Lambda's event
#   source mapping feeds it in AWS, plus its retry tick (infra/local/stream_poller.py)
# Paths map to functions through [workspace.metadata.lambda.watch.router] in Cargo.toml.
# Ctrl-C, SIGTERM or SIGHUP (to the script or its process group) stops everything this
# script started, as does a failed start-up step; see stop_and_exit.
#
# Adding a background service is two lines, e.g.:
#   start_bg stripe "$VENV/bin/python" tests/stripe_standin/server.py --port "$STRIPE_PORT"
#   wait_ready stripe 30 log_has stripe '^READY '
# shellcheck disable=SC2329  # helpers run indirectly: wait_ready "$@", traps
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

# ---- configuration (environment overrides) --------------------------------
default_secret() { # NAME DEFAULT: use $NAME if set, else DEFAULT (and say so)
  if [[ -z "${!1:-}" ]]; then
    printf -v "$1" '%s' "$2"
    echo "dev: $1 not set, using dev default: $2"
  fi
}
default_secret ADMIN_TOKEN dev-admin-token
default_secret TOKEN_SIGNING_KEY dev-token-signing-key-change-me
# Stripe: a real key (sk_test_/sk_live_ from the dashboard) talks to Stripe itself, with
# webhooks forwarded by `stripe listen`; anything else runs the local stand-in.
if [[ ${STRIPE_SECRET_KEY:-} == sk_test_* && ${STRIPE_SECRET_KEY:-} != sk_test_local* ]] || [[ ${STRIPE_SECRET_KEY:-} == sk_live_* ]]; then
  STRIPE_MODE=real
else
  STRIPE_MODE=standin
  STRIPE_SECRET_KEY=sk_test_local
fi
default_secret STRIPE_WEBHOOK_SECRET whsec_dev_local_webhook_secret
STRIPE_PORT=${STRIPE_PORT:-12111}
TABLE_NAME=${TABLE_NAME:-credits-local}
DYNAMODB_PORT=${DYNAMODB_PORT:-8000}
DYNAMODB_PROXY_PORT=${DYNAMODB_PROXY_PORT:-0}
DYNAMODB_MODEL_CONFLICTS=${DYNAMODB_MODEL_CONFLICTS:-1}
DYNAMODB_THROTTLE=${DYNAMODB_THROTTLE:-1}
WATCH_PORT=${WATCH_PORT:-9000}
CONCURRENCY=${CONCURRENCY:-8}
RUST_LOG=${RUST_LOG:-info}
# Outbound webhooks (§9): plain http to loopback receivers is allowed locally only.
ALLOW_LOCAL_WEBHOOKS=${ALLOW_LOCAL_WEBHOOKS:-true}
WEBHOOK_RETRY_BASE_SECONDS=${WEBHOOK_RETRY_BASE_SECONDS:-5}
TICK_SECONDS=${TICK_SECONDS:-1} # the retry tick (one minute in AWS)
READY_TIMEOUT=${READY_TIMEOUT:-60} # seconds, per service
VENV=${VENV:-.venv}
DEV_DIR=${DEV_DIR:-.dev} # logs and the function env file
# For tests of this script: a command run instead of the Rust side (create-table and
# `cargo lambda watch`), answering HTTP on $WATCH_PORT. Unset, nothing changes.
FUNCTIONS_STANDIN=${DEV_FUNCTIONS_STANDIN:-}

DYNAMODB_URL="http://127.0.0.1:$DYNAMODB_PORT"
WATCH_URL="http://127.0.0.1:$WATCH_PORT"

# Never let a developer's real AWS session leak into the local stack.
unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SESSION_TOKEN

mkdir -p "$DEV_DIR"
chmod 700 "$DEV_DIR"

# ---- background services --------------------------------------------------
BG_NAMES=()
BG_PIDS=()

# new_group CMD...: exec CMD as the leader of a new process group (its pid is the pgid).
if command -v setsid >/dev/null; then
  new_group() { exec setsid "$@"; }
else # macOS has no setsid(1)
  new_group() { exec perl -e 'setpgrp(0, 0); exec @ARGV or die "exec $ARGV[0]: $!\n"' -- "$@"; }
fi

# start_bg [--tty] NAME CMD...: run CMD in a new process group (so all of it can be
# stopped), output to .dev/NAME.log (or to the terminal with --tty).
start_bg() {
  local tty=false
  if [[ $1 == --tty ]]; then
    tty=true
    shift
  fi
  local name=$1
  shift
  if $tty; then
    new_group "$@" 2>&1 </dev/null &
  else
    new_group "$@" >"$DEV_DIR/$name.log" 2>&1 </dev/null &
  fi
  BG_NAMES+=("$name")
  BG_PIDS+=("$!")
}

pid_of() { # NAME -> pid
  local i
  for i in "${!BG_NAMES[@]}"; do
    if [[ ${BG_NAMES[i]} == "$1" ]]; then
      echo "${BG_PIDS[i]}"
      return
    fi
  done
  return 1
}

# Readiness checks for wait_ready.
log_has() { grep -Eq -- "$2" "$DEV_DIR/$1.log" 2>/dev/null; }
http_answers() { curl -s -o /dev/null --max-time 1 -X OPTIONS -H 'Origin: http://localhost' -H 'Access-Control-Request-Method: GET' "$1"; }

# wait_ready NAME TIMEOUT CHECK...: poll CHECK until it succeeds; fail if the
# service dies or TIMEOUT seconds pass.
wait_ready() {
  local name=$1 timeout=$2
  shift 2
  local pid deadline=$((SECONDS + timeout))
  pid=$(pid_of "$name")
  until "$@"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "dev: $name exited before it was ready" >&2
      [[ -f $DEV_DIR/$name.log ]] && tail -n 20 "$DEV_DIR/$name.log" >&2
      return 1
    fi
    if ((SECONDS >= deadline)); then
      echo "dev: $name not ready after ${timeout}s" >&2
      [[ -f $DEV_DIR/$name.log ]] && tail -n 20 "$DEV_DIR/$name.log" >&2
      return 1
    fi
    sleep 0.2
  done
}

descendants() { # PID -> all descendant pids (some leave the process group via setsid)
  local child
  for child in $(pgrep -P "$1" 2>/dev/null); do
    echo "$child"
    descendants "$child"
  done
}

alive() { # PID: still running (a zombie is not: it only waits to be reaped)
  # Read with builtins, no fork: on a loaded machine a `ps` per pid per poll made stopping
  # take longer than a minute.
  local stat
  read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
  stat=${stat##*) } # after the command name, which may hold spaces and parentheses
  [[ ${stat%% *} != Z ]]
}

stop_all() { # TERM every service's process group and descendants; KILL what is left after 5 s
  local -a groups=("${BG_PIDS[@]}") procs left
  local pid
  # `jobs -p` too: a signal can land between a service's start and `BG_PIDS+=`.
  mapfile -t -O "${#groups[@]}" groups < <(jobs -p)
  for pid in "${groups[@]}"; do
    procs+=("$pid")
    mapfile -t -O "${#procs[@]}" procs < <(descendants "$pid")
    kill -TERM -- "-$pid" 2>/dev/null
  done
  ((${#procs[@]})) || return 0
  kill -TERM "${procs[@]}" 2>/dev/null
  for _ in {1..50}; do
    left=()
    for pid in "${procs[@]}"; do alive "$pid" && left+=("$pid"); done
    ((${#left[@]})) || break
    sleep 0.1
  done
  if ((${#left[@]})); then
    echo "dev: still running 5 s after TERM, killing pids ${left[*]}" >&2
    for pid in "${groups[@]}"; do kill -KILL -- "-$pid" 2>/dev/null; done
    kill -KILL "${left[@]}" 2>/dev/null
  fi
  wait 2>/dev/null
  echo "dev: stopped"
}

# Every way out ends here: Ctrl-C (INT), TERM, HUP (terminal gone), a failed start-up
# step (set -e), a service exiting. Signals arriving while stopping are ignored: make
# forwards a TERM it gets to this script, which so gets two when the process group is
# signalled, and the second used to kill the script halfway through stopping.
STOPPING=false
stop_and_exit() { # STATUS
  $STOPPING && return
  STOPPING=true
  trap '' INT TERM HUP PIPE
  set +e # a failed kill or echo (closed terminal) must not cut the stop short
  stop_all
  exit "$1"
}
trap 'stop_and_exit $?' EXIT
trap 'stop_and_exit 130' INT
trap 'stop_and_exit 143' TERM
trap 'stop_and_exit 129' HUP

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
ports=("$DYNAMODB_PORT" "$WATCH_PORT")
[[ $DYNAMODB_PROXY_PORT != 0 ]] && ports+=("$DYNAMODB_PROXY_PORT")
[[ $STRIPE_MODE == standin ]] && ports+=("$STRIPE_PORT")
for port in "${ports[@]}"; do
  port_free "$port" || {
    echo "dev: port $port is already in use (a previous 'make dev'?)" >&2
    exit 1
  }
done

# ---- tools ----------------------------------------------------------------
make -s venv VENV="$VENV"
export PATH="$PWD/$VENV/bin:$PATH" # `cargo lambda` runs the `cargo-lambda` executable from the PyPI wheel
[[ -n $FUNCTIONS_STANDIN ]] || cargo lambda --version >/dev/null

# ---- DynamoDB -------------------------------------------------------------
# Per-partition-key throttling on by default, as DynamoDB does it: a design that only works
# without it fails here first.
throttle_flag=--throttle
[[ ${DYNAMODB_THROTTLE,,} =~ ^(0|false|no|off)$ ]] && throttle_flag=--no-throttle
start_bg dynamodb "$VENV/bin/python" infra/local/dynamodb_server.py --host 127.0.0.1 --port "$DYNAMODB_PORT" \
  "$throttle_flag"
wait_ready dynamodb "$READY_TIMEOUT" log_has dynamodb '^READY '
echo "dev: DynamoDB emulator at $DYNAMODB_URL ($throttle_flag per partition key, DYNAMODB_THROTTLE=0 turns it off; capacity: curl -s $DYNAMODB_URL/_emulator/capacity; log $DEV_DIR/dynamodb.log)"

[[ -n $FUNCTIONS_STANDIN ]] || make -s table DYNAMODB_PORT="$DYNAMODB_PORT" TABLE_NAME="$TABLE_NAME"

# The functions reach the emulator through the fault proxy, so overlapping writes fail as
# they can on DynamoDB (tests/faults/dynamodb_proxy.py; its /_proxy/stats counts them).
model_flag=--model-conflicts
[[ $DYNAMODB_MODEL_CONFLICTS == 0 ]] && model_flag=--no-model-conflicts
start_bg dynamodb-proxy "$VENV/bin/python" tests/faults/dynamodb_proxy.py --upstream "$DYNAMODB_URL" \
  --host 127.0.0.1 --port "$DYNAMODB_PROXY_PORT" "$model_flag"
wait_ready dynamodb-proxy "$READY_TIMEOUT" log_has dynamodb-proxy '^READY '
STORE_URL=$(sed -n 's/^READY //p' "$DEV_DIR/dynamodb-proxy.log" | head -n 1)
echo "dev: functions reach DynamoDB through $STORE_URL ($model_flag; stats: curl -s $STORE_URL/_proxy/stats; log $DEV_DIR/dynamodb-proxy.log)"

# ---- Stripe ---------------------------------------------------------------
# The stand-in signs the events it sends with STRIPE_WEBHOOK_SECRET and delivers them to
# the webhook route, as `stripe listen --forward-to` does.
STRIPE_API_BASE=
if [[ $STRIPE_MODE == standin ]]; then
  STRIPE_API_BASE="http://127.0.0.1:$STRIPE_PORT"
  start_bg stripe "$VENV/bin/python" tests/stripe_standin/server.py --host 127.0.0.1 --port "$STRIPE_PORT" \
    --webhook-url "$WATCH_URL/api/stripe/webhook" --webhook-secret "$STRIPE_WEBHOOK_SECRET"
  wait_ready stripe "$READY_TIMEOUT" log_has stripe '^READY '
  echo "dev: Stripe stand-in at $STRIPE_API_BASE (log $DEV_DIR/stripe.log), webhooks signed with STRIPE_WEBHOOK_SECRET"
else
  echo "dev: using Stripe itself; forward webhooks with: stripe listen --forward-to localhost:$WATCH_PORT/api/stripe/webhook"
fi

# ---- functions ------------------------------------------------------------
# `cargo lambda watch` passes its own environment to the functions and adds the
# --env-file variables on top; the file makes the function environment explicit.
# Values are single-quoted (the env-file parser rejects unquoted ':' '/' ',' '=').
ENV_FILE="$DEV_DIR/function.env"
write_env() {
  local key val
  for key in "$@"; do
    val=${!key}
    if [[ $val == *"'"* || $val == *$'\n'* ]]; then
      echo "dev: $key must not contain a single quote or a newline" >&2
      return 1
    fi
    printf "%s='%s'\n" "$key" "$val"
  done
}
# shellcheck disable=SC2034  # read by write_env through ${!key}
AWS_ENDPOINT_URL_DYNAMODB=$STORE_URL
# shellcheck disable=SC2034
AWS_REGION=us-east-1
# shellcheck disable=SC2034
AWS_ACCESS_KEY_ID=local
# shellcheck disable=SC2034
AWS_SECRET_ACCESS_KEY=local
(
  umask 077
  write_env TABLE_NAME AWS_ENDPOINT_URL_DYNAMODB AWS_REGION AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY \
    ADMIN_TOKEN TOKEN_SIGNING_KEY RUST_LOG STRIPE_SECRET_KEY STRIPE_API_BASE STRIPE_WEBHOOK_SECRET \
    ALLOW_LOCAL_WEBHOOKS WEBHOOK_RETRY_BASE_SECONDS >"$ENV_FILE"
)

# RUST_LOG reaches the functions through the env file; cargo-lambda itself would
# also obey it and log every spawn with its full environment.
if [[ -n $FUNCTIONS_STANDIN ]]; then
  start_bg --tty watch bash -c "$FUNCTIONS_STANDIN"
else
  start_bg --tty watch env -u RUST_LOG cargo lambda watch \
    --invoke-address 127.0.0.1 \
    --invoke-port "$WATCH_PORT" \
    --concurrency "$CONCURRENCY" \
    --env-file "$ENV_FILE"
fi
wait_ready watch "$READY_TIMEOUT" http_answers "$WATCH_URL/"

# ---- events ---------------------------------------------------------------
# The same dispatcher binary as in AWS, invoked through cargo lambda watch's Invoke API with
# stream batches read from the emulator (its first invocation compiles it).
if [[ -z $FUNCTIONS_STANDIN ]]; then
  start_bg events "$VENV/bin/python" infra/local/stream_poller.py --dynamodb "$DYNAMODB_URL" \
    --table "$TABLE_NAME" --invoke "$WATCH_URL" --tick-seconds "$TICK_SECONDS"
  wait_ready events "$READY_TIMEOUT" log_has events '^READY '
  echo "dev: events dispatcher fed from the table's stream (log $DEV_DIR/events.log); webhooks to loopback allowed"
fi

echo "ready: $WATCH_URL  try: curl -s -X POST $WATCH_URL/admin/entities -H 'authorization: Bearer $ADMIN_TOKEN' -H 'content-type: application/json' -d '{\"name\":\"Acme\",\"ownerUserIds\":[\"u-1\"],\"currency\":\"usd\"}'"

# Run until Ctrl-C or until any service exits.
set +e
wait -n
status=$?
set -e
echo "dev: a service exited (status $status); stopping the rest" >&2
exit "$status"
