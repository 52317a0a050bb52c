# The shards scenario of scripts/bench (--shards [N]): sourced by scripts/bench, which defines log,
# die, record, now, elapsed, stop_operator, api_snapshot, remove_leftovers, free_port, n, per_ns,
# timeout_s, quiet_s, out, repo, label_key, selector, ns_prefix, lease, operator_args, opbin,
# bench and opconfig.
#
# Does sharding split memory? N apps (replicas: 0), labelled winapp.dev/bench-shard=s0 or s1 in
# turn. First one operator over all of them (no --shard) converges them and is measured settled;
# then it stops and two shards start side by side, each with its --selector (…,bench-shard=sK),
# --shard sK and --lease-name: they adopt the children of their apps (each child is applied once
# more, with the shard's label) and are measured settled. Which apps each reconciled comes from
# their logs (debug lines of the reconcile). Last, M apps are relabelled from s0 to s1: the
# time until s1 has reconciled them and their children carry its label.

shard_names=(s0 s1)
moved=${BENCH_SHARD_MOVES:-10}

# Starts an operator: identity, log, pid variable, url variable, then its extra arguments.
start_named_operator() {
  local identity=$1 logf=$2 pid_var=$3 url_var=$4
  shift 4
  local port; port=$(free_port)
  KUBECONFIG=$opconfig RUST_LOG=${RUST_LOG:-info,winapp_operator::controller=debug} "$opbin" run --exit-with-parent \
    --lease-namespace winapp-system --identity "$identity" --http-addr "127.0.0.1:$port" \
    "$@" "${operator_args[@]}" </dev/null >"$logf" 2>&1 &
  printf -v "$pid_var" '%s' "$!"
  printf -v "$url_var" '%s' "http://127.0.0.1:$port/metrics"
}

stop_pid() { # TERM, wait up to 30 s, then KILL: only a pid this script started
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# The apps (namespace/name) an operator's log says it reconciled.
reconciled_apps() {
  grep -E 'controller: reconciled' "$1" | grep -oE 'namespace="?[a-z0-9-]+"?[ ,}].*name="?[a-z0-9-]+' |
    sed -E 's/namespace="?([a-z0-9-]+)"?.*name="?([a-z0-9-]+)/\1\/\2/' | sort -u
}

# Measures the settled operator `pid` at `url` as TAG: memory, CPU, its metrics.
measure_settled() {
  local tag=$1 pid=$2 url=$3
  record "${tag}_rss_anon_kib" "$(pid_rss "$pid" RssAnon)"
  record "${tag}_rss_file_kib" "$(pid_rss "$pid" RssFile)"
  record "${tag}_hwm_kib" "$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status")"
  record "${tag}_cpu_s" "$(pid_cpu "$pid")"
  curl -fsS --max-time 10 --retry 3 --retry-all-errors "$url" >"$out/metrics-$tag.txt" || die "cannot read $url"
}

run_shards() {
  log "shards: N=$n apps (replicas: 0) in ${#shard_names[@]} shards; run directory $out"
  build_operator_and_bench
  use_dev_cluster
  install_operator_prereqs
  refuse_other_leaders
  opconfig=$out/operator.kubeconfig
  write_operator_kubeconfig "$opconfig"
  remove_leftovers
  local s
  for s in "$lease" "${shard_names[@]/#/$lease-}"; do
    kubectl delete lease "$s" -n winapp-system --ignore-not-found >/dev/null
  done

  "$bench" gen -n "$n" -per-namespace "$per_ns" -namespace-prefix "$ns_prefix" -label "$selector" -what namespaces >"$out/namespaces.yaml"
  "$bench" gen -n "$n" -per-namespace "$per_ns" -namespace-prefix "$ns_prefix" -label "$selector" -what apps \
    -replicas 0 -shards "${#shard_names[@]}" >"$out/apps.yaml"
  kubectl apply -f "$out/namespaces.yaml" >/dev/null
  record mode shards
  record n "$n"
  record shards "${#shard_names[@]}"
  record commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo +dirty)"
  record started_at "$(date -u +%Y-%m-%dT%H:%MZ)"
  record nproc "$(nproc)"
  kubectl apply --server-side -f "$out/apps.yaml" >/dev/null

  # 1. One operator over all N.
  log "1/3 one operator over all $n apps"
  local one_pid one_url t0
  t0=$(now)
  start_named_operator bench-$$-one "$out/operator-one.log" one_pid one_url \
    --lease-name "$lease" --selector "$selector"
  op_pid=$one_pid # stopped by the exit trap should anything fail
  "$bench" wait-ready -kubeconfig "$KUBECONFIG" -selector "$selector" -n "$n" -since "$t0" -timeout "${timeout_s}s" >/dev/null ||
    die "not every app turned Ready under one operator; log: $out/operator-one.log"
  "$bench" wait-quiet -url "$one_url" -for "${quiet_s}s" -since "$t0" -timeout "${timeout_s}s" >/dev/null ||
    die "the operator did not settle"
  measure_settled one "$one_pid" "$one_url"
  stop_pid "$one_pid"
  op_pid=""

  # 2. Two shards side by side, each over its half.
  log "2/3 two shards, each with its selector, --shard and Lease"
  local pids=() urls=() i pid url
  api_snapshot api-shards-0.tsv
  t0=$(now)
  for i in "${!shard_names[@]}"; do
    s=${shard_names[$i]}
    start_named_operator "bench-$$-$s" "$out/operator-$s.log" pid url \
      --lease-name "$lease-$s" --selector "$selector,winapp.dev/bench-shard=$s" --shard "$s"
    pids+=("$pid") urls+=("$url")
  done
  for i in "${!shard_names[@]}"; do
    s=${shard_names[$i]}
    local half=$(((n - i + ${#shard_names[@]} - 1) / ${#shard_names[@]}))
    "$bench" wait-metric -url "${urls[$i]}" -name winapp_apps -label ready=True -at-least "$half" -since "$t0" \
      -timeout "${timeout_s}s" >"$out/shard-$s-verified.txt" || die "shard $s did not re-verify its $half apps"
  done
  for i in "${!shard_names[@]}"; do
    "$bench" wait-quiet -url "${urls[$i]}" -for "${quiet_s}s" -since "$t0" -timeout "${timeout_s}s" >/dev/null ||
      die "shard ${shard_names[$i]} did not settle"
  done
  record shards_settled_s "$(elapsed "$t0")"
  api_snapshot api-shards-1.tsv
  for i in "${!shard_names[@]}"; do
    measure_settled "${shard_names[$i]}" "${pids[$i]}" "${urls[$i]}"
    reconciled_apps "$out/operator-${shard_names[$i]}.log" >"$out/reconciled-${shard_names[$i]}.txt"
  done
  record both_reconciled "$(comm -12 "$out/reconciled-${shard_names[0]}.txt" "$out/reconciled-${shard_names[1]}.txt" | wc -l)"
  record reconciled_s0 "$(wc -l <"$out/reconciled-${shard_names[0]}.txt")"
  record reconciled_s1 "$(wc -l <"$out/reconciled-${shard_names[1]}.txt")"

  # 3. Apps moving from the first shard to the second.
  log "3/3 moving $moved apps from ${shard_names[0]} to ${shard_names[1]}"
  kubectl get windowsapps -A -l "winapp.dev/bench-shard=${shard_names[0]}" --no-headers |
    awk -v m="$moved" 'NR <= m { print $1, $2 }' >"$out/moved.txt"
  local target=$((n / 2 + moved))
  t0=$(now)
  local ns name
  while read -r ns name; do
    kubectl label windowsapp "$name" -n "$ns" --overwrite "winapp.dev/bench-shard=${shard_names[1]}" >/dev/null
  done <"$out/moved.txt"
  "$bench" wait-metric -url "${urls[1]}" -name winapp_apps -label ready=True -at-least "$target" -since "$t0" \
    -timeout 120s >/dev/null || log "shard ${shard_names[1]} did not report $target apps within 120s"
  record move_verified_s "$(elapsed "$t0")"
  local relabelled=0
  while read -r ns name; do
    # The app's children must carry the new shard's label: the old shard no longer caches them.
    local labels
    labels=$(kubectl get deployments,services,configmaps,serviceaccounts -n "$ns" -l "winapp.dev/app=$name" \
      -o jsonpath='{range .items[*]}{.metadata.labels.winapp\.dev/shard}{"\n"}{end}')
    if [ -n "$labels" ] && ! grep -qv -x "${shard_names[1]}" <<<"$labels"; then relabelled=$((relabelled + 1)); fi
  done <"$out/moved.txt"
  record moved "$moved"
  record moved_relabelled "$relabelled"
  sleep 5
  for i in "${!shard_names[@]}"; do
    curl -fsS --max-time 10 "${urls[$i]}" >"$out/metrics-${shard_names[$i]}-moved.txt" || true
    stop_pid "${pids[$i]}"
  done
  record wall_total_s $((SECONDS - t_start))
  log "removing the benchmark's namespaces"
  kubectl delete namespaces -l "$selector" --wait=true --timeout=600s >/dev/null ||
    log "warning: the namespaces $ns_prefix-* did not go within 600s"
  report_shards | tee "$out/report.md"
}

report_shards() {
  load_results
  local one=$((one_rss_anon_kib + one_rss_file_kib))
  echo "## winapp-operator shards: N = $n WindowsApps (replicas: 0) over ${#shard_names[@]} shards"
  echo
  echo "$started_at; commit $commit; $nproc CPUs. Resident memory once settled (anonymous + file-backed)."
  echo
  echo "| operator | apps | resident (heap + file) | share of one operator: resident; heap | heap per app | CPU |"
  echo "|---|---|---|---|---|---|"
  echo "| one, no --shard | $n | $(awk -v a="$one_rss_anon_kib" -v f="$one_rss_file_kib" 'BEGIN { printf "%.1f MiB (%.1f + %.1f)", (a + f) / 1024, a / 1024, f / 1024 }') | 1.00; 1.00 | $(awk -v a="$one_rss_anon_kib" -v n="$n" 'BEGIN { printf "%.1f KiB", a / n }') | ${one_cpu_s} s |"
  local s a f c
  for s in "${shard_names[@]}"; do
    a=${s}_rss_anon_kib f=${s}_rss_file_kib c=${s}_cpu_s
    echo "| shard $s | $((n / 2)) | $(awk -v a="${!a}" -v f="${!f}" 'BEGIN { printf "%.1f MiB (%.1f + %.1f)", (a + f) / 1024, a / 1024, f / 1024 }') | $(awk -v a="${!a}" -v f="${!f}" -v o="$one" -v oa="$one_rss_anon_kib" 'BEGIN { printf "%.2f; %.2f", (a + f) / o, a / oa }') | $(awk -v a="${!a}" -v n="$((n / 2))" 'BEGIN { printf "%.1f KiB", a / n }') | ${!c} s |"
  done
  echo
  echo "Apps reconciled by both shards (their debug logs): $both_reconciled (s0 reconciled $reconciled_s0, s1 $reconciled_s1). Shards settled (adopting the children of one operator's apps) after ${shards_settled_s} s."
  echo "Apps moved from s0 to s1 by their label: $moved; all their children carry s1's label: $moved_relabelled; s1 reported them Ready after ${move_verified_s} s."
}
