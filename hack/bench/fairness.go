package main

// The fair-queueing scenario of `scripts/bench --fairness`: many Stalled apps (SMB volumes whose
// Secrets are missing) and one healthy app of another team, whose changes must not wait behind
// them. This file holds the Stalled apps' generator, the latency probe of the healthy app's
// changes and the scenario's report.

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"
)

// stalledApp writes one WindowsApp with `volumes` SMB volumes, each naming a Secret that is never
// created (missing-0, missing-1, ...), so that the operator reports it Stalled/SecretMissing.
// No replicas: the scenario is about the operator's queue, not the cluster's pods.
func stalledApp(w io.Writer, name, namespace, labelKey, labelValue string, volumes int) {
	fmt.Fprintf(w, `---
apiVersion: winapp.dev/v1alpha1
kind: WindowsApp
metadata:
  name: %s
  namespace: %s
  labels:
    %s: "%s"
    winapp.dev/bench-role: stalled
spec:
  image: registry.example.com/orders/web:4.8.1-ltsc2022
  replicas: 0
  windows:
    version: ltsc2022
  volumes:
`, name, namespace, labelKey, labelValue)
	for i := 0; i < volumes; i++ {
		fmt.Fprintf(w, `    - name: share-%[1]d
      mountPath: 'D:\share-%[1]d'
      smb: {source: //fs/share-%[1]d, secretRef: {name: missing-%[1]d}}
`, i)
	}
}

// appCondition: the app's status is at its current generation and its condition `typ` has
// `status` (and `reason`, when not empty). The second value says what it is instead, for
// progress messages.
func appCondition(u *unstructured.Unstructured, typ, status, reason string) (bool, string) {
	observed, _, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration")
	conditions, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conditions {
		m, ok := c.(map[string]any)
		if !ok || m["type"] != typ {
			continue
		}
		if observed != u.GetGeneration() {
			return false, "generation not observed yet"
		}
		got, _ := m["reason"].(string)
		desc := fmt.Sprintf("%s=%v/%s", typ, m["status"], got)
		return m["status"] == status && (reason == "" || got == reason), desc
	}
	return false, "no " + typ + " condition"
}

func cmdWaitCondition(args []string) error {
	fs := flag.NewFlagSet("wait-condition", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig")
	selector := fs.String("selector", "winapp.dev/bench=true", "label selector of the WindowsApps")
	n := fs.Int("n", 0, "how many WindowsApps must have the condition")
	typ := fs.String("type", "Stalled", "condition type")
	status := fs.String("status", "True", "condition status")
	reason := fs.String("reason", "", "condition reason (any when empty)")
	since := fs.String("since", "", "Unix time the clock starts at (default: now)")
	timeout := fs.Duration("timeout", 20*time.Minute, "how long to wait")
	_ = fs.Parse(args)
	what := fmt.Sprintf("%s=%s", *typ, *status)
	if *reason != "" {
		what += "/" + *reason
	}
	return waitApps(*kubeconfig, *selector, *n, *since, *timeout, what, func(u *unstructured.Unstructured) (bool, string) {
		return appCondition(u, *typ, *status, *reason)
	})
}

// quantile of sorted values by nearest rank: the smallest value with at least q of the values at
// or below it (so the maximum whenever q > 1 - 1/len, for example p99 of up to 100 values).
func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	rank := int(math.Ceil(q*float64(len(sorted)) - 1e-9))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// change is one measured change of the healthy app.
type change struct {
	generation int64
	latency    time.Duration // from sending the patch to a status at its generation (or the timeout)
	patch      time.Duration // the patch request itself
	timedOut   bool
}

// observer follows one app's status.observedGeneration through an informer, with the moment each
// value was first seen.
type observer struct {
	mu     sync.Mutex
	gen    int64
	at     time.Time
	notify chan struct{}
}

func (o *observer) see(obj any) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return
	}
	g, _, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration")
	now := time.Now()
	o.mu.Lock()
	if g > o.gen {
		o.gen, o.at = g, now
	}
	o.mu.Unlock()
	select {
	case o.notify <- struct{}{}:
	default:
	}
}

// reached: when observedGeneration first reached at least gen (ok false while it has not).
func (o *observer) reached(gen int64) (time.Time, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.at, o.gen >= gen
}

func cmdLatency(args []string) error {
	fs := flag.NewFlagSet("latency", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig of the team that changes the app (admin will do)")
	namespace := fs.String("namespace", "", "the app's namespace")
	name := fs.String("name", "", "the app's name")
	changes := fs.Int("changes", 20, "how many changes")
	spacing := fs.Duration("spacing", 2*time.Second, "pause after a change was reconciled before the next one")
	jitter := fs.Duration("jitter", time.Second, "plus a random pause of up to this (so that the changes do not keep step with the operator's requeue period)")
	seed := fs.Uint64("seed", 1, "seed of the jitter")
	timeout := fs.Duration("timeout", 60*time.Second, "how long one change may take to be reconciled")
	raw := fs.String("raw", "", "file for the raw figures, one change a line (TSV)")
	_ = fs.Parse(args)
	if *namespace == "" || *name == "" || *changes < 1 {
		return fmt.Errorf("-namespace, -name and -changes (≥ 1) are required")
	}
	cfg, err := restConfig(*kubeconfig)
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	obs := &observer{notify: make(chan struct{}, 1)}
	informer := dynamicinformer.NewFilteredDynamicInformer(dyn, windowsApps, *namespace, 0, cache.Indexers{},
		func(o *metav1.ListOptions) { o.FieldSelector = "metadata.name=" + *name })
	_, err = informer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    obs.see,
		UpdateFunc: func(_, obj any) { obs.see(obj) },
	})
	if err != nil {
		return err
	}
	go informer.Informer().Run(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), informer.Informer().HasSynced) {
		return fmt.Errorf("the watch of %s/%s did not sync", *namespace, *name)
	}
	apps := dyn.Resource(windowsApps).Namespace(*namespace)
	rng := rand.New(rand.NewPCG(*seed, 0x6661697221))
	nonce := time.Now().UnixNano()
	var out []change
	for i := 1; i <= *changes; i++ {
		// A new value of an environment variable: a new generation, and a new pod template.
		patch, _ := json.Marshal(map[string]any{"spec": map[string]any{"env": []map[string]string{
			{"name": "BENCH_CHANGE", "value": fmt.Sprintf("%d-%d", nonce, i)},
		}}})
		sent := time.Now()
		u, err := apps.Patch(ctx, *name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "winapp-bench"})
		if err != nil {
			return fmt.Errorf("change %d: %w", i, err)
		}
		c := change{generation: u.GetGeneration(), patch: time.Since(sent)}
		deadline := time.NewTimer(*timeout)
		for waiting := true; waiting; {
			if at, ok := obs.reached(c.generation); ok {
				c.latency, waiting = max(at.Sub(sent), 0), false
				continue
			}
			select {
			case <-obs.notify:
			case <-deadline.C:
				c.latency, c.timedOut, waiting = *timeout, true, false
			}
		}
		deadline.Stop()
		out = append(out, c)
		state := "ok"
		if c.timedOut {
			state = "TIMEOUT"
		}
		fmt.Fprintf(os.Stderr, "[latency] change %d/%d: generation %d observed after %s (%s)\n", i, *changes, c.generation, seconds(c.latency), state)
		if i < *changes {
			pause := *spacing
			if *jitter > 0 {
				pause += time.Duration(rng.Int64N(int64(*jitter)))
			}
			time.Sleep(pause)
		}
	}
	if *raw != "" {
		if err := writeChanges(*raw, out); err != nil {
			return err
		}
	}
	for _, line := range latencySummary(out, *timeout) {
		fmt.Println(line)
	}
	return nil
}

func writeChanges(path string, changes []change) error {
	var b strings.Builder
	b.WriteString("# change\tgeneration\tlatency_s\tpatch_s\tstate\n")
	for i, c := range changes {
		state := "ok"
		if c.timedOut {
			state = "timeout"
		}
		fmt.Fprintf(&b, "%d\t%d\t%.3f\t%.3f\t%s\n", i+1, c.generation, c.latency.Seconds(), c.patch.Seconds(), state)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// latencySummary: the key=value lines of results.env. A change not reconciled within the timeout
// counts as longer than any other ("> timeout" when a quantile falls on it).
func latencySummary(changes []change, timeout time.Duration) []string {
	vals := make([]float64, 0, len(changes))
	timeouts := 0
	var sum float64
	for _, c := range changes {
		v := c.latency.Seconds()
		if c.timedOut {
			timeouts++
			v = math.Inf(1)
		} else {
			sum += v
		}
		vals = append(vals, v)
	}
	sort.Float64s(vals)
	f := func(v float64) string {
		if math.IsInf(v, 1) {
			return "> " + seconds(timeout)
		}
		return strconv.FormatFloat(v, 'f', 3, 64)
	}
	lines := []string{
		fmt.Sprintf("latency_changes=%d", len(changes)),
		fmt.Sprintf("latency_timeouts=%d", timeouts),
		fmt.Sprintf("latency_timeout_s=%s", seconds(timeout)),
	}
	if len(vals) == 0 {
		return lines
	}
	lines = append(lines,
		"latency_p50_s="+f(quantile(vals, 0.5)),
		"latency_p90_s="+f(quantile(vals, 0.9)),
		"latency_p99_s="+f(quantile(vals, 0.99)),
		"latency_min_s="+f(vals[0]),
		"latency_max_s="+f(vals[len(vals)-1]))
	if ok := len(vals) - timeouts; ok > 0 {
		lines = append(lines, "latency_mean_s="+strconv.FormatFloat(sum/float64(ok), 'f', 3, 64))
	}
	return lines
}

// perAppMinute: a count over a window, per app and minute.
func perAppMinute(count, apps, windowSeconds float64) float64 {
	if apps <= 0 || windowSeconds <= 0 {
		return math.NaN()
	}
	return count / apps / (windowSeconds / 60)
}

// promDiff: the growth of a counter between two scrapes, by the value of one label.
func promDiff(a, b prom, name, label string) map[string]float64 {
	out := map[string]float64{}
	before := a.by(name, label)
	for k, v := range b.by(name, label) {
		if d := v - before[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

func describeFloats(m map[string]float64) string {
	if len(m) == 0 {
		return "none"
	}
	// Largest first: the point of these rows is what dominates.
	keys := sortedKeys(m)
	sort.SliceStable(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] })
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %.0f", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func sumFloats(m map[string]float64) (t float64) {
	for _, v := range m {
		t += v
	}
	return t
}

// reportFairness: the report of a `scripts/bench --fairness` run directory.
func reportFairness(w io.Writer, r runDir) error {
	p := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	n, _ := r.num("n")
	window, _ := r.num("rest_window_s")
	p("## winapp-operator fairness benchmark: N = %s Stalled apps × V = %s SMB volumes, C = %s changes of a healthy app",
		r.str("n"), r.str("volumes"), r.str("changes"))
	p("")
	opArgs := "default flags"
	if a := r.str("operator_args"); a != "" {
		opArgs = "`" + a + "`"
	}
	p("%s; commit %s; %s CPUs, load average %s at the start, %s at the end; operator release build, %s, with the secret-check RBAC (config/components/secret-check).",
		r.str("started_at"), r.str("commit"), r.str("nproc"), r.str("load_start"), r.str("load_end"), opArgs)
	p("The Stalled apps: `replicas: 0` (no pods: the scenario loads the operator's queue, not the nodes), each with %s SMB volumes whose Secrets are never created, in %s namespace(s) annotated `winapp.dev/allow=smb-volumes`. The healthy app: %s replica, no volumes, in the namespace %s of its own; each change is a new value of an environment variable (a new generation), %s apart plus up to %s of jitter.",
		r.str("volumes"), r.str("namespaces_count"), r.str("healthy_replicas"), r.str("healthy_namespace"), r.str("change_spacing"), r.str("change_jitter"))
	p("")
	p("| figure | measured | issue's target |")
	p("|---|---|---|")
	p("| all %s apps Stalled/SecretMissing at their generation, from operator start (the healthy app Ready) | %s (%s) | — |",
		r.str("n"), fmtText(r, "stalled_s", " s"), fmtText(r, "healthy_ready_s", " s"))
	if claims := r.str("claims_total"); claims != "" {
		p("| the %s claims Bound (kube-controller-manager binds each to the PersistentVolume the operator made), from operator start | %s | — |",
			claims, fmtText(r, "claims_bound_s", " s"))
	}

	m0, m1 := r.metrics("metrics-rest-0.txt"), r.metrics("metrics-rest-1.txt")
	if m0 != nil && m1 != nil && window > 0 {
		byVerb := promDiff(m0, m1, "winapp_api_requests_total", "verb")
		byRes := promDiff(m0, m1, "winapp_api_requests_total", "resource")
		total := sumFloats(byVerb)
		lease := byRes["leases"]
		reconciles := m1.sum("winapp_reconciles_total") - m0.sum("winapp_reconciles_total")
		perApp := perAppMinute(total, n, window)
		verdict := "met"
		if !(perApp < 1) {
			verdict = "**not met**"
		}
		p("| at rest, over %.0f s: the operator's API requests per Stalled app per minute (`winapp_api_requests_total`; all of them / without its Lease renewals) | %.2f / %.2f (%.0f requests, %.0f of them on its Lease) | < 1: %s |",
			window, perApp, perAppMinute(total-lease, n, window), total, lease, verdict)
		p("| … by verb | %s | — |", describeFloats(byVerb))
		p("| … by resource | %s | — |", describeFloats(byRes))
		p("| at rest: reconciles per Stalled app per minute (`winapp_reconciles_total`, the healthy app's included) | %.2f (%.0f reconciles) | — |",
			perAppMinute(reconciles, n, window), reconciles)
		if b0, ok0 := r.num("claims_bound_rest_0"); ok0 {
			if b1, ok1 := r.num("claims_bound_rest_1"); ok1 {
				p("| claims bound during the window (each a watch event that queues its app: 0 when at rest) | %.0f | — |", b1-b0)
			}
		}
		if _, ok := m1["winapp_triggers_total"]; ok {
			t := promDiff(m0, m1, "winapp_triggers_total", "source")
			p("| at rest: changes that may queue reconciles, by watch (`winapp_triggers_total`; the requeue timers not included) | %s | — |", describeFloats(t))
		}
		if cpu, ok := r.num("rest_cpu_s"); ok {
			p("| at rest: the operator's CPU (utime+stime) | %.1f s, %.0f %% of one core | — |", cpu, 100*cpu/window)
		}
		if d := r.apiDiff("api-rest-0.tsv", "api-rest-1.tsv"); d != nil {
			var secrets float64
			for k, v := range d {
				if k.group == "" && k.resource == "secrets" && k.verb == "GET" {
					secrets += v
				}
			}
			p("| at rest: GET secrets as the API server counted them (`apiserver_request_total`, every client) | %.0f (%.2f per Stalled app per minute) | — |",
				secrets, perAppMinute(secrets, n, window))
		}
	} else {
		p("| at rest | not measured (metrics-rest-0.txt / metrics-rest-1.txt missing) | — |")
	}

	if _, ok := r.env["latency_p50_s"]; ok {
		c := r.str("latency_changes")
		p99 := r.str("latency_p99_s")
		verdict := "met"
		if v, err := strconv.ParseFloat(p99, 64); err != nil || v > 2 {
			verdict = "**not met**"
		}
		note := ""
		if cn, err := strconv.Atoi(c); err == nil && cn <= 100 {
			note = fmt.Sprintf(" (nearest rank: with %d changes, p99 is the slowest one)", cn)
		}
		p("| a change of the healthy app, from sending it to a status at its generation (`status.observedGeneration`, seen through a watch): p50 / p90 / p99%s | %s / %s / %s s | p99 ≤ 2 s: %s |",
			note, r.str("latency_p50_s"), r.str("latency_p90_s"), p99, verdict)
		p("| … min / mean / max; changes not reconciled within %s s | %s / %s / %s s; %s of %s | — |",
			r.str("latency_timeout_s"), r.str("latency_min_s"), r.str("latency_mean_s"), r.str("latency_max_s"), r.str("latency_timeouts"), c)
	} else {
		p("| latency of the healthy app's changes | not measured | — |")
	}
	l0, l1 := r.metrics("metrics-latency-0.txt"), r.metrics("metrics-latency-1.txt")
	if l0 != nil && l1 != nil {
		if s, ok := r.num("latency_phase_s"); ok && s > 0 {
			reconciles := l1.sum("winapp_reconciles_total") - l0.sum("winapp_reconciles_total")
			requests := l1.sum("winapp_api_requests_total") - l0.sum("winapp_api_requests_total")
			p("| during the changes (%.0f s): reconciles / API requests per Stalled app per minute | %.2f / %.2f | — |",
				s, perAppMinute(reconciles, n, s), perAppMinute(requests, n, s))
		}
	}
	if h, ok := readHistogram(l1, "winapp_reconcile_duration_seconds"); ok {
		p("| reconcile duration, every reconcile since start (histogram): p50 / p90 / p99; mean | %s / %s / %s; mean %s | — |",
			h.quantile(0.5), h.quantile(0.9), h.quantile(0.99), fmtDuration(h.sum/h.count))
	}
	if l1 != nil {
		f := l1.by("winapp_reconcile_failures_total", "category")
		if t := sumFloats(f); t > 0 {
			p("| failed reconciles since start, by category | %s | — |", describeFloats(f))
		}
	}
	p("| delete every app with the operator running: until the apps (their PersistentVolumes removed, the finalizer with them) are gone / and their namespaced children | %s / %s | — |",
		fmtText(r, "delete_apps_gone_s", " s"), fmtText(r, "delete_gone_s", " s"))
	p("")
	p("A change's latency includes the operator's debounce (`--debounce-ms`, 500 ms unless the operator arguments say otherwise): the watch events of one app within it make one reconcile, so that is the least a change takes. \"At rest\" counts everything the operator sent, the healthy app's resync and its Lease included.")
	p("")

	if data, err := os.ReadFile(filepath.Join(r.dir, "latency.tsv")); err == nil {
		p("<details><summary>Each change of the healthy app (latency.tsv: seconds from sending the patch to seeing its generation observed; the patch request's own time)</summary>")
		p("")
		p("| change | generation | latency | patch | state |")
		p("|---|---|---|---|---|")
		for _, line := range strings.Split(string(data), "\n") {
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			p("| %s |", strings.ReplaceAll(line, "\t", " | "))
		}
		p("")
		p("</details>")
		p("")
	}
	p("Wall time: %s s in all (setup %s s, apps until Stalled %s s, rest %s s, changes %s s, delete %s s).",
		r.str("wall_total_s"), r.str("wall_setup_s"), r.str("wall_stall_s"), r.str("wall_rest_s"), r.str("wall_latency_s"), r.str("wall_delete_s"))
	return nil
}

// fmtText: a figure of results.env with a unit when it is a number, as written otherwise
// ("timeout after 300s"), "—" when absent.
func fmtText(r runDir, key, unit string) string {
	v := r.str(key)
	if v == "" {
		return "—"
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		return fmt.Sprintf("%.1f%s", f, unit)
	}
	return v
}
