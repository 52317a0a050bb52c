// argocd-health: runs Argo CD resource health checks in gopher-lua as Argo CD does (see main.go);
// its own module, with a dependency graph separate from hack/kstatus and hack/controlplane/*.
module winapp.dev/hack/argocd

go 1.26.0

require (
	github.com/yuin/gopher-lua v1.1.1
	sigs.k8s.io/yaml v1.6.0
)

require go.yaml.in/yaml/v2 v2.4.2 // indirect
