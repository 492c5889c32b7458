#!/usr/bin/env bash
# make demo: run the whole pipeline against local stand-in vendors, send mixed-consent traffic
# through the ingest API and print what ClickHouse recorded. Expects services-up and build done.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=bin/tollgate
CONFIG=deploy/demo/config.yaml
STATE=${TOLLGATE_SERVICES_DIR:-.services}/demo
mkdir -p "$STATE"

# A fresh topic prefix and database per run, so the report shows this run only.
RUN=$(date +%Y%m%d%H%M%S)
export TOLLGATE_KAFKA_TOPIC_PREFIX="demo${RUN}."
export TOLLGATE_CLICKHOUSE_DATABASE="tollgate_demo"
# Demo secrets: the policy names the variables, never the values.
export GA4_API_SECRET=demo-ga4-secret META_TOKEN=demo-meta-token OPS_HOOK_SECRET=whsec_ZGVtby1vcHMtc2VjcmV0

STEPS=8
step_n=0
t0=$SECONDS
step() { step_n=$((step_n + 1)); printf '\n==> [%d/%d %3ds] %s\n' "$step_n" "$STEPS" "$((SECONDS - t0))" "$*"; }
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

step "resetting the demo database $TOLLGATE_CLICKHOUSE_DATABASE"
curl -fsS 'http://127.0.0.1:8123/' --data-binary "DROP DATABASE IF EXISTS $TOLLGATE_CLICKHOUSE_DATABASE" >/dev/null

step "starting stand-in vendors (ga4 :9101, meta :9102, ops webhook :9103)"
$BIN standins --ga4 127.0.0.1:9101 --meta 127.0.0.1:9102 --webhook 127.0.0.1:9103 2>"$STATE/standins.log" &
pids+=($!)

step "starting tollgate run (logs: $STATE/tollgate.log)"
start=$(date +%s.%N)
$BIN run --config "$CONFIG" 2>"$STATE/tollgate.log" &
pids+=($!)
for i in $(seq 1 60); do
  curl -fsS http://127.0.0.1:8080/readyz >/dev/null 2>&1 && break
  [ "$i" = 60 ] && { echo; echo "ingest did not become ready; see $STATE/tollgate.log"; tail -20 "$STATE/tollgate.log"; exit 1; }
  printf '\r    waiting for ingest /readyz (topics, consumer groups) %ds' "$((i / 2))"
  sleep 0.5
done
printf '\r    ingest is ready%40s\n' ""

step "sending sample traffic through POST /v1/events"
go run ./deploy/demo/traffic -events 300 -users 40

# The banner: three visitors browse before answering it. The policy's hold (hold: in
# policy.yaml, CONTRACT §9) keeps their first events until the choice instead of blocking them.
# The processor holds an event when it reads it, and held_ms counts from then: let it catch up
# with the sample traffic first, so the visitors' events are held as they arrive (a processor
# still joining its group would read events and choice in one batch, and hold them for 0 ms).
caught_up() {
  curl -fsS http://127.0.0.1:8080/metrics 2>/dev/null | awk -v g="group=\"${TOLLGATE_KAFKA_TOPIC_PREFIX}processor\"" '
    index($0, "tollgate_consumer_group_lag{") == 1 && index($0, g) { seen = 1; lag += $NF }
    END { exit !(seen && lag == 0) }'
}
for i in $(seq 1 120); do
  caught_up && break
  printf '\r    waiting for the consent processor to catch up %ds' "$((i / 2))"
  sleep 0.5
done
printf '\r%60s\r' ""
step "three visitors browse before answering the consent banner (the policy holds their events)"
VISITORS="visitor-$RUN"
# (Not tee /dev/stderr: with the output sent to a file, that would reopen and truncate it.)
banner_out=$(go run ./deploy/demo/traffic -banner "$VISITORS")
echo "$banner_out"
banner=$(awk '/events accepted/ {print $2}' <<<"$banner_out")
expected=$(((300 + banner) * 3))

step "waiting for $expected decisions in ClickHouse"
# Events of users who never chose are decided (blocked, no_consent) when the hold's window
# passes: 30 s in the demo policy, so the count ends about that long after the traffic.
echo "    events of users who never chose wait out the hold's 30 s window"
count() { curl -fsS 'http://127.0.0.1:8123/' --data-binary "SELECT count() FROM $TOLLGATE_CLICKHOUSE_DATABASE.decisions FINAL" 2>/dev/null || echo 0; }
for i in $(seq 1 120); do
  n=$(count)
  printf '\r    %s/%s decisions' "$n" "$expected"
  [ "$n" -ge "$expected" ] && break
  [ "$i" = 120 ] && { echo; echo "timed out; see $STATE/tollgate.log"; exit 1; }
  sleep 1
done
echo
# Deliveries trail decisions by the vendors' round trips; give them a moment to land.
for i in $(seq 1 30); do
  d=$(curl -fsS 'http://127.0.0.1:8123/' --data-binary "SELECT countIf(status IN ('delivered','dead_lettered','blocked')) FROM $TOLLGATE_CLICKHOUSE_DATABASE.deliveries FINAL")
  f=$(curl -fsS 'http://127.0.0.1:8123/' --data-binary "SELECT countIf(outcome = 'forwarded') FROM $TOLLGATE_CLICKHOUSE_DATABASE.decisions FINAL")
  [ "$d" -ge "$f" ] && break
  sleep 1
done
end=$(date +%s.%N)

step "the banner: events sent before the click reached the vendors after it"
ch() { curl -fsS 'http://127.0.0.1:8123/' --data-binary "$1"; }
ch "SELECT user_key AS visitor, event_name AS event, formatDateTime(event_time, '%T') AS sent, destination, outcome, reason,
    round(held_ms / 1000, 1) AS held_s, delivered
  FROM (SELECT user_key, event_id, event_name, destination, outcome, reason, held_ms, event_time
    FROM $TOLLGATE_CLICKHOUSE_DATABASE.decisions FINAL WHERE user_key LIKE '$VISITORS-%' AND destination != 'ops')
  ANY LEFT JOIN (SELECT event_id, destination, formatDateTime(max(at), '%T') AS delivered
    FROM $TOLLGATE_CLICKHOUSE_DATABASE.deliveries WHERE status = 'delivered' GROUP BY event_id, destination)
  USING (event_id, destination)
  ORDER BY user_key, event_time, event_id, destination FORMAT PrettyCompactNoEscapes"
cat <<EOT
$VISITORS-accepts: the five events sent before "Accept all" were held (held_s) until the
click, then decided under it, in their order and before the purchase sent after it, and
delivered to ga4 and meta. -rejects: held, then blocked with the refusal's reason (withdrawn).
-never-answers: blocked, no_consent, once the 30 s window passed. See one visitor as the privacy
team would: $BIN audit user --config $CONFIG --id $VISITORS-accepts
EOT

step "report (read back from ClickHouse)"
$BIN audit summary --config "$CONFIG"
printf '\n%s events in, %s decisions, %s final deliveries, %.1f s from start to report\n' "$((300 + banner))" "$(count)" "$d" "$(awk "BEGIN{print $end - $start}")"

cat <<EOT

Open (first party, all on this machine):
  demo page with consent banner  http://127.0.0.1:8080/demo/
  the snippet it loads           http://127.0.0.1:8080/tg.js
  Prometheus metrics (with lag)  http://127.0.0.1:8080/metrics
  ClickHouse (HTTP)              http://127.0.0.1:8123/?query=SELECT+reason,count()+FROM+$TOLLGATE_CLICKHOUSE_DATABASE.decisions+FINAL+GROUP+BY+reason
Banner clicks land in the same audit tables; see them with
  TOLLGATE_CLICKHOUSE_DATABASE=$TOLLGATE_CLICKHOUSE_DATABASE $BIN audit summary --config $CONFIG
EOT
# Keep the pipeline up for the page when a person is watching; scripts and CI end here.
if [[ -t 0 && "${TOLLGATE_DEMO_EXIT:-}" != 1 ]]; then
  echo "The pipeline keeps running: press Ctrl-C to stop it."
  trap 'echo; echo "stopping"; exit 0' INT TERM
  wait
fi
