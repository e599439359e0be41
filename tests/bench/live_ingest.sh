#!/usr/bin/env bash
# Sustained messages/s of `tend run` against Mosquitto: a backlog of QoS 1 telemetry
# for the example site (configs/site.toml, 9 devices) is queued in the agent's
# persistent session while it is stopped; then the agent is started and the time to
# drain the backlog (plugin evaluation + durable commit + ack) is measured.
#
#   tests/bench/live_ingest.sh [DAYS]      # DAYS of telemetry (default 10: 216,000 msgs)
#
# Needs: the release build and the plugins (scripts/build-plugins.sh), mosquitto.
set -euo pipefail
cd "$(dirname "$0")/../.."
DAYS=${1:-10}
scripts/setup.sh >/dev/null
[ -x target/release/tend ] && [ -f target/plugins/solar-water-heater.wasm ] || {
    scripts/build-plugins.sh >/dev/null && cargo build --release -p tend
}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/mosquitto.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 0
max_queued_bytes 0
sys_interval 1
user $(id -un)
CONF
mosquitto -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
mosquitto_pid=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.05; done

export TEND_MQTT_URL="mqtt://127.0.0.1:$port" TEND_DATA_DIR="$work/data" TEND_CENTRAL_URL="http://127.0.0.1:9"
run_agent() { target/release/tend --log-json run --config configs/agent.toml >"$work/agent.log" 2>&1 & pid=$!; }
wait_ready() {
    for _ in $(seq 600); do grep -q '"mqtt_ready":true' "$work/agent.log" && return 0; sleep 0.05; done
    echo "agent not ready:"; cat "$work/agent.log"; exit 1
}

stored() { mosquitto_sub -h 127.0.0.1 -p "$port" -C 1 -W 5 -t '$SYS/broker/store/messages/count' 2>/dev/null || echo "?"; }

# 1. Create the agent's persistent session, then stop it; note what the broker's
#    store holds with nothing queued ($SYS and other retained messages).
run_agent; wait_ready; kill -TERM "$pid"; wait "$pid" || true
sleep 1.2   # $SYS is refreshed every second
baseline=$(stored)

# 2. Queue the backlog: DAYS of telemetry, one publisher per device.
python3 - "$work" "$DAYS" <<'PY'
import json, sys, datetime, os
work, days = sys.argv[1], int(sys.argv[2])
tz = datetime.timezone(datetime.timedelta(hours=8))
start = datetime.datetime(2026, 11, 1, tzinfo=tz)
tmpl = {}
for ty in ["solar-water-heater", "door-controller", "av-system"]:
    with open(f"plugins/{ty}/traces/normal.jsonl") as f:
        tmpl[ty] = [json.loads(l)["payload"] for l in f if "/telemetry" in l]
devs = [("swh-roof-a1", "solar-water-heater", 60), ("swh-roof-a2", "solar-water-heater", 60),
        ("swh-roof-b1", "solar-water-heater", 60), ("door-stair-a1", "door-controller", 30),
        ("door-stair-a2", "door-controller", 30), ("door-lobby-main", "door-controller", 30),
        ("av-hall-1", "av-system", 30), ("av-lobby", "av-system", 30), ("av-training-3", "av-system", 30)]
total = 0
for dev, ty, period in devs:
    with open(os.path.join(work, dev), "w") as out:
        for i, t in enumerate(range(0, days * 86400, period)):
            p = dict(tmpl[ty][i % len(tmpl[ty])])
            p["ts"] = (start + datetime.timedelta(seconds=t)).isoformat()
            out.write(json.dumps(p, separators=(",", ":")) + "\n")
            total += 1
print(total, file=open(os.path.join(work, "total"), "w"))
PY
total=$(cat "$work/total")
for dev in swh-roof-a1 swh-roof-a2 swh-roof-b1 door-stair-a1 door-stair-a2 door-lobby-main av-hall-1 av-lobby av-training-3; do
    mosquitto_pub -h 127.0.0.1 -p "$port" -q 1 -t "tend/huaihai-138/$dev/telemetry" -l <"$work/$dev" &
done
wait $(jobs -p | grep -v "^$mosquitto_pid\$")
echo "backlog queued: $total messages (broker store: $(stored))"

# 3. Start the agent and time the drain.
t0=$(date +%s.%N)
run_agent
for _ in $(seq 3000); do
    n=$(stored)
    [ "$n" != "?" ] && [ "$n" -le "$baseline" ] && break
    sleep 0.2
done
t1=$(date +%s.%N)
kill -TERM "$pid"; wait "$pid" || true
python3 - "$total" "$t0" "$t1" <<'PY'
import sys
total, t0, t1 = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
secs = t1 - t0
print(f"tend run drained {total} QoS 1 messages in {secs:.1f} s (agent start included, "
      f"broker $SYS polled every 0.2 s, updated every 1 s): {total/secs:,.0f} msgs/s")
PY
