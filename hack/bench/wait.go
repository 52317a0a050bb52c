package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/tools/cache"
)

// appReady: Ready=True at the current generation. The second value is the Ready reason (or why
// not ready) for progress messages.
func appReady(u *unstructured.Unstructured) (bool, string) {
	observed, _, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration")
	conditions, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conditions {
		m, ok := c.(map[string]any)
		if !ok || m["type"] != "Ready" {
			continue
		}
		reason, _ := m["reason"].(string)
		if observed != u.GetGeneration() {
			return false, "generation not observed yet"
		}
		return m["status"] == "True", fmt.Sprintf("%v/%s", m["status"], reason)
	}
	return false, "no Ready condition"
}

func cmdWaitReady(args []string) error {
	fs := flag.NewFlagSet("wait-ready", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig")
	selector := fs.String("selector", "winapp.dev/bench=true", "label selector of the WindowsApps")
	n := fs.Int("n", 0, "how many WindowsApps must be Ready")
	since := fs.String("since", "", "Unix time the clock starts at (default: now)")
	timeout := fs.Duration("timeout", 20*time.Minute, "how long to wait")
	_ = fs.Parse(args)
	return waitApps(*kubeconfig, *selector, *n, *since, *timeout, "Ready", appReady)
}

// waitApps waits until at least n WindowsApps that match selector pass done (whose second value
// says why not, for the progress messages), and prints the seconds since `since`.
func waitApps(kubeconfig, selector string, n int, since string, timeout time.Duration, what string,
	done func(*unstructured.Unstructured) (bool, string)) error {
	start, err := sinceEpoch(since)
	if err != nil {
		return err
	}
	cfg, err := restConfig(kubeconfig)
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	informer := dynamicinformer.NewFilteredDynamicInformer(dyn, windowsApps, metav1.NamespaceAll, 0, cache.Indexers{},
		func(o *metav1.ListOptions) { o.LabelSelector = selector })
	go informer.Informer().Run(ctx.Done())
	deadline := start.Add(timeout)
	lastReport := time.Now()
	for {
		ready, seen := 0, 0
		reasons := map[string]int{}
		var example string
		for _, item := range informer.Informer().GetStore().List() {
			u := item.(*unstructured.Unstructured)
			seen++
			ok, why := done(u)
			if ok {
				ready++
			} else {
				reasons[why]++
				if example == "" {
					example = u.GetNamespace() + "/" + u.GetName()
				}
			}
		}
		if ready >= n && informer.Informer().HasSynced() {
			fmt.Println(seconds(time.Since(start)))
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: %d of %d WindowsApps %s after %s (%d seen; the others by status/reason: %s; for example %s)",
				errTimeout, ready, n, what, timeout, seen, describeCounts(reasons), example)
		}
		if time.Since(lastReport) >= 30*time.Second {
			fmt.Fprintf(os.Stderr, "[wait] %d of %d %s after %.0fs; the others: %s\n", ready, n, what, time.Since(start).Seconds(), describeCounts(reasons))
			lastReport = time.Now()
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func cmdWaitGone(args []string) error {
	fs := flag.NewFlagSet("wait-gone", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig (admin: lists ReplicaSets and pods)")
	selector := fs.String("selector", "winapp.dev/bench=true", "label selector of the WindowsApps")
	nsList := fs.String("namespaces", "", "comma-separated namespaces whose children and pods must be gone")
	since := fs.String("since", "", "Unix time the clock starts at (default: now)")
	timeout := fs.Duration("timeout", 10*time.Minute, "how long to wait")
	_ = fs.Parse(args)
	start, err := sinceEpoch(*since)
	if err != nil {
		return err
	}
	cfg, err := restConfig(*kubeconfig)
	if err != nil {
		return err
	}
	md, err := metadata.NewForConfig(cfg)
	if err != nil {
		return err
	}
	namespaces := map[string]bool{}
	for _, ns := range splitList(*nsList) {
		namespaces[ns] = true
	}
	left, appsGone, err := waitGone(context.Background(), md, *selector, namespaces, start.Add(*timeout))
	if err != nil {
		return fmt.Errorf("%w after %s; still there: %s", err, *timeout, left)
	}
	// Two figures: everything gone, and the WindowsApps alone (their finalizers are the operator's).
	fmt.Println(seconds(time.Since(start)), seconds(appsGone.Sub(start)))
	return nil
}

// scrape reads one metric (summed over its label sets, or over those with label = value when
// label is "key=value") from a Prometheus text endpoint.
func scrape(url, name, label string) (float64, error) {
	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s: HTTP %d", url, resp.StatusCode)
	}
	p := parseProm(string(body))
	if key, value, ok := strings.Cut(label, "="); ok {
		return p.by(name, key)[value], nil
	}
	return p.sum(name), nil
}

func cmdWaitMetric(args []string) error {
	fs := flag.NewFlagSet("wait-metric", flag.ExitOnError)
	url := fs.String("url", "", "the operator's /metrics URL")
	name := fs.String("name", "winapp_reconciles_total", "metric (summed over its label sets)")
	label := fs.String("label", "", "only the label sets with this label (key=value)")
	interval := fs.Duration("interval", 100*time.Millisecond, "how often to scrape")
	atLeast := fs.Float64("at-least", 1, "value to reach")
	since := fs.String("since", "", "Unix time the clock starts at (default: now)")
	timeout := fs.Duration("timeout", 5*time.Minute, "how long to wait")
	_ = fs.Parse(args)
	start, err := sinceEpoch(*since)
	if err != nil {
		return err
	}
	deadline := start.Add(*timeout)
	var last float64
	var lastErr error
	for {
		v, err := scrape(*url, *name, *label)
		if err == nil {
			last, lastErr = v, nil
			if v >= *atLeast {
				fmt.Println(seconds(time.Since(start)))
				return nil
			}
		} else {
			lastErr = err
		}
		if time.Now().After(deadline) {
			if lastErr != nil {
				return fmt.Errorf("%w: %s did not reach %g within %s (last error: %v)", errTimeout, *name, *atLeast, *timeout, lastErr)
			}
			return fmt.Errorf("%w: %s = %g, not %g, after %s", errTimeout, *name, last, *atLeast, *timeout)
		}
		time.Sleep(*interval)
	}
}

func cmdWaitQuiet(args []string) error {
	fs := flag.NewFlagSet("wait-quiet", flag.ExitOnError)
	url := fs.String("url", "", "the operator's /metrics URL")
	// Not winapp_reconciles_total: every Ready app is reconciled again every 5 minutes (without
	// writing), so with many apps that counter never rests.
	names := fs.String("names", "winapp_child_writes_total,winapp_status_writes_total", "comma-separated metrics that must stop moving")
	quiet := fs.Duration("for", 10*time.Second, "how long they must stay unchanged")
	since := fs.String("since", "", "Unix time the clock starts at (default: now); prints the time of the last change")
	timeout := fs.Duration("timeout", 3*time.Minute, "how long to wait")
	_ = fs.Parse(args)
	start, err := sinceEpoch(*since)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(*timeout)
	var last []float64
	lastChange := time.Now()
	for {
		client := http.Client{Timeout: 5 * time.Second}
		resp, err := client.Get(*url)
		var body []byte
		if err == nil {
			body, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		if err != nil {
			// A busy machine may delay an answer: retry until the deadline.
			if time.Now().After(deadline) {
				return fmt.Errorf("%w: %s unreadable after %s: %v", errTimeout, *url, *timeout, err)
			}
			time.Sleep(500 * time.Millisecond)
			continue
		}
		p := parseProm(string(body))
		var now []float64
		for _, n := range splitList(*names) {
			now = append(now, p.sum(n))
		}
		if fmt.Sprint(now) != fmt.Sprint(last) {
			last, lastChange = now, time.Now()
		}
		if time.Since(lastChange) >= *quiet {
			fmt.Println(seconds(lastChange.Sub(start)))
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: %s still changing after %s (now %v)", errTimeout, *names, *timeout, now)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// sortedKeys of a map with string keys.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
