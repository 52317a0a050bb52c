# The labelled-object flood of scripts/bench (--flood M): sourced by scripts/bench, which defines
# log, die, record, start_operator, stop_operator, op_hwm, op_rss, op_scrape, flood, reference_bin,
# out and repo.
#
# A tenant who may create ConfigMaps may put the operator's managed-by label on them. The
# operator caches every labelled object of its child kinds (its watch is by that label); what it
# keeps of one that is no app's child is its metadata. This measures that: the operator settled
# with no apps, then M ConfigMaps of 0.9 MiB in a namespace of their own, then a restart over them.

flood_ns=winapp-bench-flood

# Creates M labelled ConfigMaps of 0.9 MiB in $flood_ns, 10 a request.
create_flood() {
  kubectl create namespace "$flood_ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  python3 - "$1" "$flood_ns" "$out/flood" <<'PY'
import json, os, sys
m, ns, d = int(sys.argv[1]), sys.argv[2], sys.argv[3]
os.makedirs(d, exist_ok=True)
content = "x" * (900 * 1024)
for start in range(0, m, 10):
    items = [{"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": f"planted-{i}", "namespace": ns,
                           "labels": {"app.kubernetes.io/managed-by": "winapp-operator",
                                      "winapp.dev/app": "web", "winapp.dev/namespace": ns}},
              "data": {"Web.config": content}} for i in range(start, min(m, start + 10))]
    with open(f"{d}/{start:05d}.json", "w") as f:
        json.dump({"apiVersion": "v1", "kind": "List", "items": items}, f)
PY
  local f
  for f in "$out"/flood/*.json; do kubectl apply --server-side -f "$f" >/dev/null; done
  rm -rf "$out/flood"
}

# The value of a metric for one label set (0 when absent).
metric_of() { # file name labels
  awk -v n="$2" -v l="$3" 'index($0, n "{") == 1 && index($0, l) { v = $NF } END { print v + 0 }' "$out/$1"
}

# Waits until the operator's ConfigMap cache holds at least $1 objects.
wait_cached() {
  local i got
  for i in $(seq 300); do
    curl -fsS --max-time 5 "$op_url" >"$out/metrics-wait.txt" 2>/dev/null || true
    got=$(metric_of metrics-wait.txt winapp_cache_objects 'kind="ConfigMap"')
    [ "${got%.*}" -ge "$1" ] && return 0
    sleep 1
  done
  die "the operator's cache did not see $1 ConfigMaps within 300s (it holds $got)"
}

# One operator binary through the flood; records <tag>_* figures.
flood_with() { # tag binary
  local tag=$1 saved=$opbin
  opbin=$2
  kubectl delete namespace "$flood_ns" --ignore-not-found --wait=true >/dev/null
  kubectl delete lease "$lease" -n winapp-system --ignore-not-found >/dev/null
  op_log=$out/operator-$tag-1.log
  start_operator "flood-$tag-1" "$op_log"
  "$bench" wait-metric -url "$op_url" -name winapp_reconciles_total -at-least 0 -since "$(now)" -timeout 120s >/dev/null 2>&1 || true
  sleep 15
  record "${tag}_before_anon_kib" "$(op_rss RssAnon)"
  record "${tag}_before_file_kib" "$(op_rss RssFile)"
  record "${tag}_before_hwm_kib" "$(op_hwm)"
  log "$tag: settled without the flood: anon $(op_rss RssAnon) KiB, file $(op_rss RssFile) KiB; creating $flood ConfigMaps of 0.9 MiB"
  local before
  curl -fsS --max-time 5 "$op_url" >"$out/metrics-$tag-before.txt" 2>/dev/null || true
  before=$(metric_of "metrics-$tag-before.txt" winapp_cache_objects 'kind="ConfigMap"')
  create_flood "$flood"
  if grep -q winapp_cache_objects "$out/metrics-$tag-before.txt"; then
    wait_cached $(( ${before%.*} + flood ))
  else
    sleep 60 # an operator without the cache gauges: give its watch a minute
  fi
  sleep 15
  record "${tag}_flood_anon_kib" "$(op_rss RssAnon)"
  record "${tag}_flood_file_kib" "$(op_rss RssFile)"
  record "${tag}_flood_hwm_kib" "$(op_hwm)"
  op_scrape "metrics-$tag-flood.txt"
  record "${tag}_flood_cache_body_bytes" "$(metric_of "metrics-$tag-flood.txt" winapp_cache_body_bytes 'kind="ConfigMap"')"
  log "$tag: with the flood: anon $(op_rss RssAnon) KiB, file $(op_rss RssFile) KiB, VmHWM $(op_hwm) KiB"
  stop_operator
  op_log=$out/operator-$tag-2.log
  start_operator "flood-$tag-2" "$op_log"
  sleep 30
  record "${tag}_restart_anon_kib" "$(op_rss RssAnon)"
  record "${tag}_restart_hwm_kib" "$(op_hwm)"
  log "$tag: restarted over the flood: anon $(op_rss RssAnon) KiB, VmHWM $(op_hwm) KiB"
  stop_operator
  kubectl delete namespace "$flood_ns" --wait=true >/dev/null
  opbin=$saved
}

run_flood() {
  log "flood: $flood labelled ConfigMaps of 0.9 MiB; run directory $out"
  build_operator_and_bench
  use_dev_cluster
  install_operator_prereqs
  refuse_other_leaders
  opconfig=$out/operator.kubeconfig
  write_operator_kubeconfig "$opconfig"
  record flood "$flood"
  record commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo +dirty)"
  flood_with this "$opbin"
  [ -z "$reference_bin" ] || flood_with reference "$reference_bin"
  # shellcheck disable=SC1090
  load_results
  {
    echo "| operator | settled, no flood: anon / file | with $flood × 0.9 MiB labelled ConfigMaps: anon / file / VmHWM | growth of anon | restart over them: anon / VmHWM |"
    echo "| --- | --- | --- | --- | --- |"
    for tag in this reference; do
      local b="${tag}_before_anon_kib"
      [ -n "${!b:-}" ] || continue
      local bf="${tag}_before_file_kib" fa="${tag}_flood_anon_kib" ff="${tag}_flood_file_kib" fh="${tag}_flood_hwm_kib"
      local ra="${tag}_restart_anon_kib" rh="${tag}_restart_hwm_kib"
      awk -v t="$tag" -v b="${!b}" -v bf="${!bf}" -v fa="${!fa}" -v ff="${!ff}" -v fh="${!fh}" -v ra="${!ra}" -v rh="${!rh}" \
        'BEGIN { m = 1024; printf "| %s | %.1f / %.1f MiB | %.1f / %.1f / %.1f MiB | %+.1f MiB | %.1f / %.1f MiB |\n", t, b/m, bf/m, fa/m, ff/m, fh/m, (fa-b)/m, ra/m, rh/m }'
    done
    echo
    echo "Cache body bytes of ConfigMaps with the flood (this build): ${this_flood_cache_body_bytes:-?}"
  } | tee "$out/report.md"
}
