# The paced-rollout scenario of scripts/bench (--paced [N] --limit L): sourced by scripts/bench,
# which defines log, die, record, now, start_operator, stop_operator, op_cpu, op_scrape,
# remove_leftovers, n, per_ns, rollout_limit, timeout_s, quiet_s, out, repo, selector, ns_prefix,
# lease, build_label, operator_args and the helpers of scripts/lib/dev-operator.sh.
#
# An operator upgrade that changes a default of every pod template used to roll every app at
# once. N converged apps; the operator is restarted with a change of every pod (a platform-wide
# --pod-annotation, as a new default would be) and --max-operator-rollouts L: how many
# Deployments roll the change at once (sampled every 500 ms: changed and not yet rolled out), how
# long until every app has it, and whether every app is Ready at the end.

paced_annotation=bench.example.com/rollout-wave=2

run_paced() {
  log "paced: N=$n converged apps, then an operator with --pod-annotation $paced_annotation --max-operator-rollouts $rollout_limit; run directory $out"
  build_operator_and_bench
  use_dev_cluster
  install_operator_prereqs
  refuse_other_leaders
  kubectl delete lease "$lease" -n winapp-system --ignore-not-found >/dev/null
  opconfig=$out/operator.kubeconfig
  write_operator_kubeconfig "$opconfig"
  remove_leftovers
  # Room for every app's pod and a surge pod of each rolling one.
  local free
  free=$(ensure_windows_capacity $((n + rollout_limit + n / 20 + 5)) "$build_label" bench-win2022)
  [ "$free" -ge "$n" ] || die "only $free pods fit on the Windows Server 2022 nodes, $n needed"

  "$bench" gen -n "$n" -per-namespace "$per_ns" -namespace-prefix "$ns_prefix" -label "$selector" -what namespaces >"$out/namespaces.yaml"
  "$bench" gen -n "$n" -per-namespace "$per_ns" -namespace-prefix "$ns_prefix" -label "$selector" -what apps >"$out/apps.yaml"
  local namespaces
  namespaces=$("$bench" gen -n "$n" -per-namespace "$per_ns" -namespace-prefix "$ns_prefix" -what namespace-names)
  kubectl apply -f "$out/namespaces.yaml" >/dev/null
  kubectl apply --server-side -f "$out/apps.yaml" >/dev/null
  record mode paced
  record n "$n"
  record rollout_limit "$rollout_limit"
  record started_at "$(date -u +%Y-%m-%dT%H:%MZ)"
  record commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo +dirty)"
  record load_start "$(cut -d' ' -f1-3 /proc/loadavg)"

  log "1/2 converging the $n apps"
  local t0 ready
  t0=$(now)
  op_log=$out/operator-1.log
  start_operator "paced-$$-1" "$op_log"
  ready=$("$bench" wait-ready -kubeconfig "$KUBECONFIG" -selector "$selector" -n "$n" -since "$t0" -timeout "${timeout_s}s") ||
    die "not every WindowsApp turned Ready; operator log: $op_log"
  "$bench" wait-quiet -url "$op_url" -for "${quiet_s}s" -since "$t0" -timeout "${timeout_s}s" >/dev/null ||
    die "the operator did not settle within ${timeout_s}s"
  record converged_s "$ready"
  stop_operator

  log "2/2 the operator restarted with a change of every pod template"
  local saved_args=("${operator_args[@]}")
  operator_args+=(--pod-annotation "$paced_annotation" --max-operator-rollouts "$rollout_limit")
  local t1
  t1=$(now)
  op_log=$out/operator-2.log
  start_operator "paced-$$-2" "$op_log"
  operator_args=("${saved_args[@]}")
  sleep 2
  kill -0 "$op_pid" 2>/dev/null || die "the operator exited at once: $(tail -n 3 "$op_log")"
  "$bench" rollouts -kubeconfig "$KUBECONFIG" -namespaces "$namespaces" -annotation "$paced_annotation" -n "$n" \
    -since "$t1" -timeout "${timeout_s}s" -raw "$out/rollouts.tsv" >>"$results" ||
    die "not every app rolled the change out within ${timeout_s}s; operator log: $op_log"
  ready=$("$bench" wait-ready -kubeconfig "$KUBECONFIG" -selector "$selector" -n "$n" -since "$t1" -timeout "${timeout_s}s") ||
    die "not every WindowsApp was Ready after the change; operator log: $op_log"
  record all_ready_s "$ready"
  record cpu_s "$(op_cpu)"
  op_scrape metrics-paced.txt
  stop_operator
  record load_end "$(cut -d' ' -f1-3 /proc/loadavg)"

  log "deleting the apps"
  kubectl delete windowsapps -A -l "$selector" --wait=false >/dev/null
  kubectl delete namespaces -l "$selector" --wait=true --timeout=600s >/dev/null ||
    log "warning: the namespaces $ns_prefix-* did not go within 600s"
  paced_report | tee "$out/report.md"
}

# The report: the figures, and the in-flight count over time (a row per 10 % of the run).
paced_report() {
  # shellcheck disable=SC1090
  load_results
  cat <<EOF
## winapp-operator benchmark: paced rollout of an operator change, N = $n apps, limit $rollout_limit

$started_at; commit $commit; 2 CPUs, load average $load_start at the start, $load_end at the end.
The apps converged (all Ready in ${converged_s} s); the operator was restarted with
\`--pod-annotation $paced_annotation --max-operator-rollouts $rollout_limit\`, which changes every
app's pod template. Sampled every 500 ms: a Deployment is *in flight* once its template has the
annotation and until it has rolled it out (observed, every replica updated and available, no
old pod left).

| figure | value |
|---|---|
| Deployments rolling the change at once, at most (limit $rollout_limit) | $paced_max_in_flight |
| first Deployment changed, after the restart | ${paced_first_change_s} s |
| every Deployment rolled out | ${paced_all_done_s} s |
| every app Ready at its generation | ${all_ready_s} s |
| operator CPU (utime+stime) over the phase | ${cpu_s} s |
| samples | $paced_samples |

In flight over time (seconds since the restart: changed, in flight, done):

| s | changed | in flight | done |
|---|---|---|---|
EOF
  awk -F'\t' -v n="$n" 'NR > 1 { if ($4 + 0 >= next_mark || NR == 2) { printf "| %s | %s | %s | %s |\n", $1, $2, $3, $4; next_mark = $4 + n / 10 } last = $0 }
    END { split(last, f, "\t"); printf "| %s | %s | %s | %s |\n", f[1], f[2], f[3], f[4] }' "$out/rollouts.tsv"
}
