# The fair-queueing scenario of scripts/bench (--fairness [N] --volumes V --changes C): sourced by
# scripts/bench, which defines log, die, record, now, elapsed, start_operator, stop_operator,
# op_cpu, api_snapshot, remove_leftovers, n, per_ns, volumes, changes, rest_window,
# timeout_s, quiet_s, out, repo, label_key, selector, ns_prefix, lease, build_label and
# operator_args.
#
# Tenants share the operator's queue. N apps are Stalled for good (V SMB volumes each, whose
# Secrets never come), and another team changes a healthy app C times: how long does each change
# wait, and what do the Stalled apps cost at rest (API requests and reconciles per app and
# minute)? The issue's targets: p99 ≤ 2 s for the changes, fewer than 1 request per Stalled app
# and minute.

stalled_prefix=$ns_prefix-stalled      # winapp-bench-stalled-0, -1, ...
healthy_ns=$ns_prefix-healthy
healthy_app=healthy
healthy_replicas=1
change_spacing=2s
change_jitter=1s

# The healthy app of another team: one replica, no volumes, nothing that needs a grant.
healthy_yaml() {
  cat <<EOF
---
apiVersion: v1
kind: Namespace
metadata:
  name: $healthy_ns
  labels: {$label_key: "true"}
---
apiVersion: winapp.dev/v1alpha1
kind: WindowsApp
metadata:
  name: $healthy_app
  namespace: $healthy_ns
  labels: {$label_key: "true", winapp.dev/bench-role: healthy}
spec:
  image: registry.example.com/team-b/web:1.0-ltsc2022
  replicas: $healthy_replicas
  resources: {requests: {cpu: 10m, memory: 64Mi}}
  windows: {version: ltsc2022}
  env: [{name: BENCH_CHANGE, value: "0"}]
EOF
}

# How many claims of the Stalled apps are Bound (kube-controller-manager binds each to the
# PersistentVolume the operator made for it).
claims_bound() {
  kubectl get persistentvolumeclaims -A -l app.kubernetes.io/managed-by=winapp-operator \
    -o jsonpath='{range .items[*]}{.metadata.namespace}{" "}{.status.phase}{"\n"}{end}' |
    awk -v p="$stalled_prefix-" 'index($1, p) == 1 && $2 == "Bound" { n++ } END { print n + 0 }'
}

# The operator's counters and CPU at a point of the run: metrics-TAG.txt, api-TAG.tsv; prints
# the CPU seconds. Its /metrics is served by the same thread that reconciles: under this load an
# answer may be late, so it is asked again.
fairness_mark() {
  curl -fsS --max-time 10 --retry 3 --retry-all-errors "$op_url" >"$out/metrics-$1.txt" ||
    die "cannot read the operator's $op_url"
  api_snapshot "api-$1.tsv"
  op_cpu
}

run_fairness() {
  log "fairness: N=$n Stalled apps × $volumes SMB volumes (Secrets missing), $per_ns per namespace; $changes changes of a healthy app; run directory $out"
  build_operator_and_bench

  use_dev_cluster
  log "installing the CRDs, the RBAC of config/rbac and the secret-check RBAC (config/components/secret-check)"
  install_operator_prereqs
  # As tests/operator/harness.rs does: the operator may see whether Secrets exist (metadata only),
  # which is what makes the apps Stalled/SecretMissing rather than failing in their pods.
  kubectl apply --server-side -f config/components/secret-check/rbac.yaml >/dev/null
  refuse_other_leaders
  kubectl delete lease "$lease" -n winapp-system --ignore-not-found >/dev/null
  opconfig=$out/operator.kubeconfig
  write_operator_kubeconfig "$opconfig"
  remove_leftovers
  # The healthy app's pod, and its successor while a change rolls out.
  ensure_windows_capacity 2 "$build_label" bench-win2022 >/dev/null

  "$bench" gen -n "$n" -per-namespace "$per_ns" -namespace-prefix "$stalled_prefix" -label "$selector" \
    -what namespaces -allow smb-volumes >"$out/namespaces.yaml"
  "$bench" gen -n "$n" -per-namespace "$per_ns" -namespace-prefix "$stalled_prefix" -label "$selector" \
    -what stalled-apps -volumes "$volumes" >"$out/apps.yaml"
  healthy_yaml >"$out/healthy.yaml"
  local stalled_namespaces
  stalled_namespaces=$("$bench" gen -n "$n" -per-namespace "$per_ns" -namespace-prefix "$stalled_prefix" -what namespace-names)
  # The apps must pass render (the operator's own checks, with the namespaces' grant), so that a
  # mistake here shows at once rather than as apps that never turn Stalled/SecretMissing.
  "$opbin" render --allow smb-volumes -f "$out/apps.yaml" >/dev/null 2>"$out/render.log" ||
    die "winapp-operator render refuses the generated apps ($out/apps.yaml): $(head -n 3 "$out/render.log")"
  "$opbin" render -f "$out/healthy.yaml" >/dev/null 2>"$out/render.log" ||
    die "winapp-operator render refuses $out/healthy.yaml: $(head -n 3 "$out/render.log")"

  record mode fairness
  record n "$n"
  record volumes "$volumes"
  record changes "$changes"
  record per_ns "$per_ns"
  record namespaces_count "$(tr ',' '\n' <<<"$stalled_namespaces" | wc -l)"
  record healthy_namespace "$healthy_ns"
  record healthy_replicas "$healthy_replicas"
  record change_spacing "$change_spacing"
  record change_jitter "$change_jitter"
  record rest_window_s "$rest_window"
  record started_at "$(date -u +%Y-%m-%dT%H:%MZ)"
  record commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo +dirty)"
  record nproc "$(nproc)"
  record load_start "$(cut -d' ' -f1-3 /proc/loadavg)"
  record operator_args "--selector $selector${operator_args[*]:+ ${operator_args[*]}}"
  record wall_setup_s $((SECONDS - t_start))

  # ---------------------------------------------------------------------------------------------
  log "1/4 stall: $n apps with $volumes SMB volumes each (Secrets missing) and the healthy app, then the operator"
  local t_phase=$SECONDS
  kubectl apply --server-side -f "$out/namespaces.yaml" -f "$out/healthy.yaml" >/dev/null
  kubectl apply --server-side -f "$out/apps.yaml" >/dev/null
  local have
  have=$(kubectl get windowsapps -A -l "$selector,winapp.dev/bench-role=stalled" --no-headers | wc -l)
  [ "$have" -eq "$n" ] || die "$have Stalled-to-be WindowsApps exist, $n expected"
  op_log=$out/operator.log
  local t0
  t0=$(now)
  start_operator "fairness-$$" "$op_log"
  log "operator pid $op_pid, $op_url, log $op_log; waiting until all $n are Stalled/SecretMissing"
  local stalled
  stalled=$("$bench" wait-condition -kubeconfig "$KUBECONFIG" -selector "$selector,winapp.dev/bench-role=stalled" -n "$n" \
    -type Stalled -status True -reason SecretMissing -since "$t0" -timeout "${timeout_s}s") ||
    die "not every app turned Stalled/SecretMissing (see above); operator log: $op_log"
  record stalled_s "$stalled"
  log "all $n Stalled/SecretMissing after ${stalled}s; waiting for the healthy app to be Ready"
  local healthy_ready
  healthy_ready=$("$bench" wait-ready -kubeconfig "$KUBECONFIG" -selector "$selector,winapp.dev/bench-role=healthy" -n 1 \
    -since "$t0" -timeout "${timeout_s}s") || die "the healthy app $healthy_ns/$healthy_app did not turn Ready; operator log: $op_log"
  record healthy_ready_s "$healthy_ready"
  # Binding a claim changes it (and its PersistentVolume): a watch event that queues the app's
  # reconcile. kube-controller-manager binds a few a second (its client is rate-limited), so with
  # thousands of claims the apps are not at rest until it is done.
  local claims=$((n * volumes)) bound deadline=$((SECONDS + timeout_s)) last_log=$SECONDS
  record claims_total "$claims"
  log "waiting until kube-controller-manager has bound the $claims claims (each bind queues its app's reconcile)"
  while :; do
    bound=$(claims_bound) || bound=0 # a busy API server may time the list out: ask again
    if [ "$bound" -ge "$claims" ]; then
      record claims_bound_s "$(elapsed "$t0")"
      break
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "warning: $bound of $claims claims bound after ${timeout_s}s: measuring anyway (the report counts the binds during the window)"
      record claims_bound_s "not all within ${timeout_s}s ($bound of $claims)"
      break
    fi
    if [ $((SECONDS - last_log)) -ge 60 ]; then
      log "$bound of $claims claims bound"
      last_log=$SECONDS
    fi
    sleep 10
  done
  # At rest means: every child written, every status written; only the Stalled apps' looks remain.
  "$bench" wait-quiet -url "$op_url" -for "${quiet_s}s" -since "$t0" -timeout "${timeout_s}s" >/dev/null ||
    die "the operator did not settle (its write counters kept moving) within ${timeout_s}s"
  record wall_stall_s $((SECONDS - t_phase))

  # ---------------------------------------------------------------------------------------------
  log "2/4 at rest: counting the operator's requests and reconciles for ${rest_window}s"
  t_phase=$SECONDS
  local cpu0 cpu1
  record claims_bound_rest_0 "$(claims_bound || echo '?')"
  cpu0=$(fairness_mark rest-0)
  # In the background, so that a signal to this script ends the wait at once (its trap runs).
  sleep "$rest_window" &
  wait $!
  cpu1=$(fairness_mark rest-1)
  record claims_bound_rest_1 "$(claims_bound || echo '?')"
  record rest_cpu_s "$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { printf "%.2f", b - a }')"
  record wall_rest_s $((SECONDS - t_phase))

  # ---------------------------------------------------------------------------------------------
  log "3/4 latency: $changes changes of $healthy_ns/$healthy_app, each until its status observes the new generation"
  t_phase=$SECONDS
  fairness_mark latency-0 >/dev/null
  local t1
  t1=$(now)
  "$bench" latency -kubeconfig "$KUBECONFIG" -namespace "$healthy_ns" -name "$healthy_app" -changes "$changes" \
    -spacing "$change_spacing" -jitter "$change_jitter" -timeout 60s -raw "$out/latency.tsv" >>"$results" ||
    die "the latency probe failed; operator log: $op_log"
  record latency_phase_s "$(elapsed "$t1")"
  fairness_mark latency-1 >/dev/null
  grep '^latency_' "$results" | sed 's/^/    /' >&2
  record wall_latency_s $((SECONDS - t_phase))

  # ---------------------------------------------------------------------------------------------
  # The Stalled apps carry the finalizer (their PersistentVolumes are cluster-scoped): the operator
  # runs while they go, and removes their PersistentVolumes first.
  log "4/4 delete: every app, with the operator running"
  t_phase=$SECONDS
  local t2 gone all_gone apps_gone
  t2=$(now)
  kubectl delete windowsapps -A -l "$selector" --wait=false >/dev/null
  if gone=$("$bench" wait-gone -kubeconfig "$KUBECONFIG" -selector "$selector" -namespaces "$stalled_namespaces,$healthy_ns" \
    -since "$t2" -timeout "${timeout_s}s"); then
    read -r all_gone apps_gone <<<"$gone"
    record delete_gone_s "$all_gone"
    record delete_apps_gone_s "$apps_gone"
  else
    record delete_gone_s "not gone within ${timeout_s}s"
    log "warning: the apps were not gone within ${timeout_s}s: removing what is left by hand"
  fi
  stop_operator
  record wall_delete_s $((SECONDS - t_phase))
  remove_leftovers

  record load_end "$(cut -d' ' -f1-3 /proc/loadavg)"
  record wall_total_s $((SECONDS - t_start))
  "$bench" report -dir "$out" | tee "$out/report.md"
  log "done in $((SECONDS - t_start))s; report and raw figures in $out"
}
