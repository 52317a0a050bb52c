package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

// The benchmark's app: examples/aspnet-webconfig.yaml without Secrets, with one replica (or
// none: -replicas 0, scripts/bench --no-pods) and small requests (so that the KWOK nodes' pod
// capacity, not their CPU, limits how many fit). The operator makes a ServiceAccount, a
// ConfigMap with Web.config, a Service and a Deployment.
const appTemplate = `---
apiVersion: winapp.dev/v1alpha1
kind: WindowsApp
metadata:
  name: %[1]s
  namespace: %[2]s
  labels:
    %[3]s: "%[4]s"
    team: bench%[6]s
spec:
  image: registry.example.com/orders/web:4.8.1-ltsc2022
  replicas: %[5]d
  resources:
    requests: {cpu: 10m, memory: 64Mi}
    limits: {cpu: "1", memory: 1Gi}
  ports:
    - {name: http, containerPort: 80}
  env:
    - {name: APP_INSTANCE, value: %[1]s}
  probes:
    startup:
      httpGet: {path: /health, port: http}
      periodSeconds: 10
      failureThreshold: 60
    readiness:
      httpGet: {path: /health, port: http}
      periodSeconds: 10
    liveness:
      tcpSocket: {port: http}
      periodSeconds: 30
      timeoutSeconds: 10
  windows:
    version: ltsc2022
  service:
    ports:
      - {name: http, port: 80}
  config:
    mountPath: 'C:\inetpub\wwwroot'
    files:
      - name: Web.config
        content: |
          <?xml version="1.0" encoding="utf-8"?>
          <configuration>
            <appSettings>
              <add key="FeatureFlags:NewCheckout" value="true" />
              <add key="Instance" value="%[1]s" />
            </appSettings>
            <system.web>
              <compilation debug="false" targetFramework="4.8" />
              <httpRuntime targetFramework="4.8" />
              <customErrors mode="RemoteOnly" />
            </system.web>
          </configuration>
`

const namespaceTemplate = `---
apiVersion: v1
kind: Namespace
metadata:
  name: %[1]s
  labels:
    %[2]s: "%[3]s"
`

// shardLabel is the label line of app i's shard (winapp.dev/bench-shard: s<i mod shards>), or
// nothing when there are no shards.
func shardLabel(i, shards int) string {
	if shards < 1 {
		return ""
	}
	return fmt.Sprintf("\n    winapp.dev/bench-shard: s%d", i%shards)
}

// benchNamespaces names the namespaces of n apps, perNS to a namespace.
func benchNamespaces(prefix string, n, perNS int) []string {
	count := (n + perNS - 1) / perNS
	width := len(fmt.Sprint(max(count-1, 0)))
	out := make([]string, count)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%0*d", prefix, width, i)
	}
	return out
}

func cmdGen(args []string) error {
	fs := flag.NewFlagSet("gen", flag.ExitOnError)
	n := fs.Int("n", 1000, "number of apps")
	perNS := fs.Int("per-namespace", 100, "apps in one namespace")
	prefix := fs.String("namespace-prefix", "winapp-bench", "namespaces are PREFIX-0, PREFIX-1, ...")
	label := fs.String("label", "winapp.dev/bench=true", "label (key=value) of the namespaces and the apps")
	what := fs.String("what", "apps", "apps | stalled-apps | namespaces | namespace-names")
	volumes := fs.Int("volumes", 16, "stalled-apps: SMB volumes per app, each naming a Secret that does not exist")
	allow := fs.String("allow", "", "namespaces: the annotation winapp.dev/allow (the platform's grants), none when empty")
	replicas := fs.Int("replicas", 1, "apps: spec.replicas of every app (0: no pods, every child still made)")
	shards := fs.Int("shards", 0, "apps: label app i winapp.dev/bench-shard=s<i mod K> (0: no such label)")
	_ = fs.Parse(args)
	if *n < 1 || *perNS < 1 {
		return fmt.Errorf("-n and -per-namespace must be at least 1")
	}
	if *replicas < 0 {
		return fmt.Errorf("-replicas must be 0 or more")
	}
	if *volumes < 1 || *volumes > 16 {
		return fmt.Errorf("-volumes must be 1 to 16 (the CRD allows 16 volumes)")
	}
	key, value, ok := strings.Cut(*label, "=")
	if !ok {
		return fmt.Errorf("-label must be key=value")
	}
	nss := benchNamespaces(*prefix, *n, *perNS)
	w := os.Stdout
	switch *what {
	case "namespaces":
		for _, ns := range nss {
			fmt.Fprintf(w, namespaceTemplate, ns, key, value)
			if *allow != "" {
				fmt.Fprintf(w, "  annotations:\n    winapp.dev/allow: %q\n", *allow)
			}
		}
	case "namespace-names":
		fmt.Fprintln(w, strings.Join(nss, ","))
	case "apps", "stalled-apps":
		width := max(4, len(fmt.Sprint(*n-1)))
		for i := 0; i < *n; i++ {
			name := fmt.Sprintf("app-%0*d", width, i)
			if *what == "apps" {
				fmt.Fprintf(w, appTemplate, name, nss[i / *perNS], key, value, *replicas, shardLabel(i, *shards))
			} else {
				stalledApp(w, name, nss[i / *perNS], key, value, *volumes)
			}
		}
	default:
		return fmt.Errorf("-what must be apps, stalled-apps, namespaces or namespace-names")
	}
	return nil
}
