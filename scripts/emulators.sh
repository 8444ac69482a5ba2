#!/usr/bin/env bash
# Starts and stops the local emulators the tests run against, all on loopback:
#   kinesis-mock (npm kinesis-local)  for Kinesis
#   dynalite     (npm dynalite)       for DynamoDB
#   moto_server  (Python moto)        for CloudWatch
#
# Usage: scripts/emulators.sh install|start|stop|status|env
#   install  npm ci of the pinned emulators, only when the lock file changed (start does it too)
#
# State lives in .emulators/ at the repository root (override with SHARDLINE_EMULATOR_DIR):
# one PID file and one log per emulator, and `env`, a file of shell exports with the endpoints:
# the SHARDLINE_*_ENDPOINT variables internal/testenv reads and the AWS_ENDPOINT_URL_* variables
# the AWS SDKs and the AWS CLI read. Ports are chosen free at start unless SHARDLINE_KINESIS_PORT,
# SHARDLINE_DYNAMODB_PORT or SHARDLINE_CLOUDWATCH_PORT name one, in which case a port in use is
# an error that names it. Processes are stopped by the PID recorded at start, never by name.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
npm_dir="$root/testdata/emulators"
state=${SHARDLINE_EMULATOR_DIR:-"$root/.emulators"}
names=(kinesis dynamodb cloudwatch)

die() { echo "emulators: $*" >&2; exit 1; }
say() { echo "emulators: $*" >&2; }

# port_free PORT: true when nothing listens on 127.0.0.1:PORT.
port_free() {
  node -e 'const s=require("net").createServer();s.once("error",()=>process.exit(1));s.listen(+process.argv[1],"127.0.0.1",()=>s.close(()=>process.exit(0)))' "$1"
}

# free_port: a port the kernel reports free on loopback right now.
free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

# pick_port VAR: the port named by the environment variable VAR if set (it must be free),
# otherwise a free one.
pick_port() {
  local var=$1 want=${!1:-}
  if [ -n "$want" ]; then
    port_free "$want" || die "port $want (from $var) is already in use on 127.0.0.1; stop what holds it or unset $var to pick a free port"
    echo "$want"
  else
    free_port
  fi
}

# ours PID MARKER: true when PID is alive and its command line contains MARKER, so a PID that
# the system reused for an unrelated process is never signalled.
ours() {
  local pid=$1 marker=$2
  local cmdline
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmdline == *"$marker"* ]]
}

marker_for() {
  case $1 in
    kinesis) echo "kinesis-local/main.js" ;;
    dynamodb) echo "dynalite/cli.js" ;;
    cloudwatch) echo "moto_server" ;;
  esac
}

stop_one() {
  local name=$1 pidfile="$state/$1.pid" pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if [ -n "$pid" ] && ours "$pid" "$(marker_for "$name")"; then
    kill -INT "$pid" 2>/dev/null || true
    # kinesis-mock can take long to stop after fan-out subscriptions: give it a few seconds,
    # then insist.
    for _ in $(seq 1 50); do
      ours "$pid" "$(marker_for "$name")" || break
      grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null && break
      sleep 0.1
    done
    if ours "$pid" "$(marker_for "$name")"; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
    say "stopped $name (pid $pid)"
  fi
  rm -f "$pidfile"
}

stop_all() {
  for n in "${names[@]}"; do stop_one "$n"; done
  rm -f "$state/env"
}

ensure_npm() {
  command -v node >/dev/null || die "node not found: install Node.js 20 or newer (Debian: apt-get install nodejs npm)"
  command -v npm >/dev/null || die "npm not found: install npm (Debian: apt-get install npm)"
  # npm ci wipes node_modules; run it only when the lock file changed since the last install.
  local want have
  want=$(sha256sum "$npm_dir/package-lock.json" | cut -d' ' -f1)
  have=$(cat "$npm_dir/node_modules/.shardline-lock-sha256" 2>/dev/null || true)
  if [ "$want" != "$have" ]; then
    say "installing pinned emulators (npm ci in testdata/emulators)"
    (cd "$npm_dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    echo "$want" >"$npm_dir/node_modules/.shardline-lock-sha256"
  fi
}

# probe NAME PORT: one real API call; true when the emulator answers it.
probe() {
  local name=$1 port=$2
  # The emulators check that a request looks signed but not the signature itself.
  local auth="AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/$name/aws4_request, SignedHeaders=host;x-amz-date, Signature=00"
  case $name in
    kinesis)
      curl -sf -m 2 -X POST "http://127.0.0.1:$port/" \
        -H 'Content-Type: application/x-amz-json-1.1' -H 'X-Amz-Target: Kinesis_20131202.ListStreams' \
        -H "Authorization: $auth" -H 'X-Amz-Date: 20260101T000000Z' -d '{}' | grep -q StreamNames ;;
    dynamodb)
      curl -sf -m 2 -X POST "http://127.0.0.1:$port/" \
        -H 'Content-Type: application/x-amz-json-1.0' -H 'X-Amz-Target: DynamoDB_20120810.ListTables' \
        -H "Authorization: $auth" -H 'X-Amz-Date: 20260101T000000Z' -d '{}' | grep -q TableNames ;;
    cloudwatch)
      curl -sf -m 2 -X POST "http://127.0.0.1:$port/" \
        -H 'Content-Type: application/x-www-form-urlencoded' \
        -H "Authorization: ${auth/$name/monitoring}" -H 'X-Amz-Date: 20260101T000000Z' \
        -d 'Action=ListMetrics&Version=2010-08-01' | grep -q ListMetricsResult ;;
  esac
}

wait_ready() {
  local name=$1 port=$2 pid=$3
  for _ in $(seq 1 300); do
    probe "$name" "$port" && return 0
    # kill -0 rather than ours: right after the fork the PID may still show this script's
    # command line.
    kill -0 "$pid" 2>/dev/null || die "$name exited during start; its log: $state/$name.log
$(tail -20 "$state/$name.log" 2>/dev/null)"
    sleep 0.1
  done
  die "$name did not answer on port $port within 30 s; its log: $state/$name.log"
}

# launch NAME COMMAND...: starts COMMAND in the background in its own session (so a terminal's
# Ctrl-C meant for the tests does not reach it) and records its PID. exec keeps the PID the
# same from the fork to the emulator itself.
launch() {
  local name=$1
  shift
  (cd "$state" && exec setsid "$@" >"$state/$name.log" 2>&1 </dev/null) &
  echo $! >"$state/$name.pid"
}

start_all() {
  ensure_npm
  command -v moto_server >/dev/null ||
    die "moto_server not found: install moto with its server extra (pip install 'moto[server]==5.2.1')"
  mkdir -p "$state"
  # Whatever a previous run left behind is stopped first, by its recorded PID.
  stop_all

  local kport dport cport tport
  kport=$(pick_port SHARDLINE_KINESIS_PORT)
  tport=$(free_port)
  dport=$(pick_port SHARDLINE_DYNAMODB_PORT)
  cport=$(pick_port SHARDLINE_CLOUDWATCH_PORT)

  local nm="$npm_dir/node_modules"
  launch kinesis env KINESIS_MOCK_CERT_PATH="$nm/kinesis-local/server.json" \
    KINESIS_MOCK_PLAIN_PORT="$kport" KINESIS_MOCK_TLS_PORT="$tport" LOG_LEVEL=WARN SHARD_LIMIT=1000 \
    CREATE_STREAM_DURATION=0ms DELETE_STREAM_DURATION=0ms SPLIT_SHARD_DURATION=0ms \
    MERGE_SHARDS_DURATION=0ms UPDATE_SHARD_COUNT_DURATION=0ms \
    REGISTER_STREAM_CONSUMER_DURATION=0ms DEREGISTER_STREAM_CONSUMER_DURATION=0ms \
    START_STREAM_ENCRYPTION_DURATION=0ms STOP_STREAM_ENCRYPTION_DURATION=0ms \
    UPDATE_STREAM_MODE_DURATION=0ms \
    node "$nm/kinesis-local/main.js"
  # Through scripts/dynalite.js, which keeps dynalite up when a client drops a request.
  launch dynamodb node "$root/scripts/dynalite.js" "$nm/dynalite/cli.js" --host 127.0.0.1 --port "$dport" \
    --createTableMs 0 --deleteTableMs 0 --updateTableMs 0
  launch cloudwatch moto_server -H 127.0.0.1 -p "$cport"

  wait_ready kinesis "$kport" "$(cat "$state/kinesis.pid")"
  wait_ready dynamodb "$dport" "$(cat "$state/dynamodb.pid")"
  wait_ready cloudwatch "$cport" "$(cat "$state/cloudwatch.pid")"

  # The SHARDLINE_* variables are what internal/testenv reads; the AWS_ENDPOINT_URL_* ones are
  # the SDK's and the AWS CLI's own, so that after `. .emulators/env` the shardline command,
  # the agent, the examples and `aws kinesis ...` reach the same emulators without flags.
  cat >"$state/env" <<ENV
export SHARDLINE_KINESIS_ENDPOINT=http://127.0.0.1:$kport
export SHARDLINE_DYNAMODB_ENDPOINT=http://127.0.0.1:$dport
export SHARDLINE_CLOUDWATCH_ENDPOINT=http://127.0.0.1:$cport
export AWS_ENDPOINT_URL_KINESIS=http://127.0.0.1:$kport
export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$dport
export AWS_ENDPOINT_URL_CLOUDWATCH=http://127.0.0.1:$cport
ENV
  say "kinesis-mock on 127.0.0.1:$kport, dynalite on 127.0.0.1:$dport, moto on 127.0.0.1:$cport"
  say "endpoints written to $state/env"
}

status() {
  local n pid
  for n in "${names[@]}"; do
    pid=$(cat "$state/$n.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && ours "$pid" "$(marker_for "$n")"; then echo "$n: running (pid $pid)"; else echo "$n: stopped"; fi
  done
  [ -f "$state/env" ] && cat "$state/env"
  return 0
}

case ${1:-} in
  install) ensure_npm ;;
  start) start_all ;;
  stop) stop_all ;;
  status) status ;;
  env) cat "$state/env" 2>/dev/null || die "not running: run scripts/emulators.sh start" ;;
  *) echo "usage: $0 install|start|stop|status|env" >&2; exit 2 ;;
esac
