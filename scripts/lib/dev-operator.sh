# Shell helpers shared by scripts/bench and scripts/chaos: the dev cluster, the operator's
# prerequisites on it (CRDs, RBAC, a kubeconfig with its ServiceAccount's token), Windows capacity.
# Sourced, not run. The caller defines log and die, sets repo and DEV_CLUSTER_DIR, and
# dev_cluster=$repo/scripts/dev-cluster.

# A free loopback port.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# `status` gives each health check 3 s: on a busy machine ask again before deciding that the
# cluster is down (`up` would start it afresh).
cluster_healthy() {
  local i
  for i in 1 2 3; do
    "$dev_cluster" status >/dev/null 2>&1 && return 0
    [ ! -f "$DEV_CLUSTER_DIR/ports.env" ] && return 1
    sleep 5
  done
  return 1
}

# Uses the running dev cluster or brings one up (then sets cluster_started=yes), puts its kubectl
# on PATH and KUBECONFIG in the environment, and refuses to go on while scripts/demo's operator
# runs on it (it would reconcile the caller's apps too).
use_dev_cluster() {
  if cluster_healthy; then
    log "using the running dev cluster in $DEV_CLUSTER_DIR"
  else
    log "no healthy dev cluster in $DEV_CLUSTER_DIR: bringing one up"
    cluster_started=yes
    "$dev_cluster" up
  fi
  eval "$("$dev_cluster" env)"
  command -v kubectl >/dev/null || die "no kubectl on PATH after scripts/dev-cluster env"
  local demo_pid_file=$DEV_CLUSTER_DIR/pids/winapp-operator.pid
  if [ -s "$demo_pid_file" ] && kill -0 "$(cat "$demo_pid_file")" 2>/dev/null; then
    die "the operator that scripts/demo started runs on this cluster (pid $(cat "$demo_pid_file")): it would reconcile these apps too; stop it (kill $(cat "$demo_pid_file")) or use another DEV_CLUSTER_DIR"
  fi
}

# The CRDs (WindowsApp, and the gMSA one from tests/fixtures), the namespace winapp-system, the
# operator's RBAC of config/rbac and its admission fence of config/admission.
install_operator_prereqs() {
  kubectl apply --server-side -k config/crd >/dev/null
  kubectl apply --server-side -f tests/fixtures/gmsacredentialspecs.windows.k8s.io.yaml >/dev/null
  kubectl wait --for=condition=Established --timeout=60s crd/windowsapps.winapp.dev crd/gmsacredentialspecs.windows.k8s.io >/dev/null
  kubectl create namespace winapp-system --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  kubectl apply --server-side -k config/rbac >/dev/null
  kubectl apply --server-side -k config/admission >/dev/null
}

# Another operator holding a Lease in winapp-system would reconcile (and write) meanwhile.
refuse_other_leaders() {
  local now_epoch name holder renew age
  now_epoch=$(date +%s)
  while IFS='|' read -r name holder renew; do
    [ -n "$name" ] && [ -n "$holder" ] && [ -n "$renew" ] || continue
    age=$((now_epoch - $(date -d "$renew" +%s)))
    [ "$age" -gt 30 ] || die "Lease winapp-system/$name was renewed ${age}s ago by '$holder': another operator (or benchmark) runs on this cluster; stop it first"
  done < <(kubectl get leases -n winapp-system -o jsonpath='{range .items[*]}{.metadata.name}{"|"}{.spec.holderIdentity}{"|"}{.spec.renewTime}{"\n"}{end}')
}

# A kubeconfig FILE for the operator: its ServiceAccount's token (6 h), so that it runs with
# exactly the RBAC of config/rbac, as in a cluster.
write_operator_kubeconfig() {
  local file=$1 token server ca
  token=$(kubectl create token winapp-operator -n winapp-system --duration=6h)
  server=$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')
  ca=$(kubectl config view --raw --minify -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')
  (
    umask 077
    cat >"$file" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters: [{name: dev, cluster: {server: "$server", certificate-authority-data: "$ca"}}]
users: [{name: winapp-operator, user: {token: "$token"}}]
contexts: [{name: operator, context: {cluster: dev, user: winapp-operator}}]
current-context: operator
KUBECONFIG
  )
}

# Free pods on the Windows nodes of BUILD: their allocatable pods less the pods they run.
windows_capacity() {
  local build=$1 total=0 used=0 node pods
  while read -r node pods; do
    [ -n "$node" ] || continue
    total=$((total + pods))
    used=$((used + $(kubectl get pods -A --field-selector "spec.nodeName=$node,status.phase!=Succeeded,status.phase!=Failed" --no-headers 2>/dev/null | wc -l)))
  done < <(kubectl get nodes -l "node.kubernetes.io/windows-build=$build" -o jsonpath='{range .items[*]}{.metadata.name}{" "}{.status.allocatable.pods}{"\n"}{end}')
  echo $((total - used))
}

# Adds KWOK Windows nodes of BUILD named PREFIX-1, PREFIX-2, ... (110 pods each) until NEED pods
# fit; they stay. Prints the free pods at the end.
ensure_windows_capacity() {
  local need=$1 build=$2 prefix=$3 free i=1
  free=$(windows_capacity "$build")
  while [ "$free" -lt "$need" ]; do
    while kubectl get node "$prefix-$i" >/dev/null 2>&1; do i=$((i + 1)); done
    log "room for $free pods on Windows $build nodes, $need wanted: adding node $prefix-$i"
    "$dev_cluster" add-node "$prefix-$i" --os windows --build "$build" 2>&1 | grep -v '^\[dev-cluster\] creating' >&2 || true
    kubectl get node "$prefix-$i" >/dev/null 2>&1 || die "could not add node $prefix-$i"
    free=$((free + 110))
  done
  windows_capacity "$build"
}
