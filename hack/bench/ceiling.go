package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/cache"
)

// managedBy selects every child the operator (or `render`) makes, and so their pods too.
const managedBy = "app.kubernetes.io/managed-by=winapp-operator"

// child is one object to apply, with where it goes.
type child struct {
	obj        *unstructured.Unstructured
	gvr        schema.GroupVersionResource
	namespaced bool
}

// appGroups groups the rendered children by app (labels winapp.dev/namespace and winapp.dev/app,
// which every child carries), keeping render's apply order inside each app.
func appGroups(objs []*unstructured.Unstructured, mapper meta.RESTMapper) ([][]child, error) {
	var groups [][]child
	index := map[string]int{}
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", gvk, o.GetName(), err)
		}
		l := o.GetLabels()
		key := l["winapp.dev/namespace"] + "/" + l["winapp.dev/app"]
		if l["winapp.dev/app"] == "" {
			key = o.GetNamespace() + "/" + o.GetName()
		}
		i, ok := index[key]
		if !ok {
			i = len(groups)
			index[key] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], child{obj: o, gvr: m.Resource, namespaced: m.Scope.Name() == meta.RESTScopeNameNamespace})
	}
	return groups, nil
}

func resourceFor(dyn dynamic.Interface, c child) dynamic.ResourceInterface {
	if c.namespaced {
		return dyn.Resource(c.gvr).Namespace(c.obj.GetNamespace())
	}
	return dyn.Resource(c.gvr)
}

func cmdCeiling(args []string) error {
	fs := flag.NewFlagSet("ceiling", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig to write with (the benchmark passes the operator's ServiceAccount)")
	file := fs.String("f", "", "the children, as `winapp-operator render` printed them")
	workers := fs.Int("workers", 16, "concurrent writers (each applies one app's children in order)")
	fieldManager := fs.String("field-manager", "winapp-bench-ceiling", "server-side apply field manager")
	timeout := fs.Duration("timeout", 20*time.Minute, "how long the Deployments may take to become available")
	_ = fs.Parse(args)
	if *file == "" {
		return fmt.Errorf("-f is required")
	}
	cfg, err := restConfig(*kubeconfig)
	if err != nil {
		return err
	}
	objs, err := readObjects(*file)
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return err
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disc))
	groups, err := appGroups(objs, mapper)
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for _, o := range objs {
		if o.GetKind() == "Deployment" {
			want[o.GetNamespace()+"/"+o.GetName()] = true
		}
	}

	// The Deployments' watch is set up and synced before the clock starts.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lw := cache.NewFilteredListWatchFromClient(cs.AppsV1().RESTClient(), "deployments", metav1.NamespaceAll,
		func(o *metav1.ListOptions) { o.LabelSelector = managedBy })
	informer := cache.NewSharedIndexInformer(lw, &appsv1.Deployment{}, 0, cache.Indexers{})
	go informer.Run(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
		return fmt.Errorf("the Deployment watch did not sync")
	}

	start := time.Now()
	jobs := make(chan []child)
	var errs, retries atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range *workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for group := range jobs {
				for _, c := range group {
					for attempt := 0; ; attempt++ {
						_, err := resourceFor(dyn, c).Apply(ctx, c.obj.GetName(), c.obj,
							metav1.ApplyOptions{FieldManager: *fieldManager, Force: true})
						if err == nil {
							break
						}
						if attempt == 5 {
							errs.Add(1)
							firstErr.CompareAndSwap(nil, fmt.Sprintf("%s %s/%s: %v", c.obj.GetKind(), c.obj.GetNamespace(), c.obj.GetName(), err))
							break
						}
						retries.Add(1)
						time.Sleep(time.Duration(100*(attempt+1)) * time.Millisecond)
					}
				}
			}
		}()
	}
	for _, g := range groups {
		jobs <- g
	}
	close(jobs)
	wg.Wait()
	written := time.Since(start)
	fmt.Fprintf(os.Stderr, "[ceiling] %d children of %d apps written in %ss (%d retried writes, %d failed)\n",
		len(objs), len(groups), seconds(written), retries.Load(), errs.Load())
	if e := firstErr.Load(); e != nil {
		fmt.Fprintf(os.Stderr, "[ceiling] first failed write: %s\n", e)
	}

	deadline := time.Now().Add(*timeout)
	lastReport := time.Now()
	var available int
	for {
		available = 0
		for _, item := range informer.GetStore().List() {
			d := item.(*appsv1.Deployment)
			if want[d.Namespace+"/"+d.Name] && deploymentAvailable(d) {
				available++
			}
		}
		if available == len(want) {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: %d of %d Deployments available after %s", errTimeout, available, len(want), *timeout)
		}
		if time.Since(lastReport) > 30*time.Second {
			fmt.Fprintf(os.Stderr, "[ceiling] %d of %d Deployments available after %.0fs\n", available, len(want), time.Since(start).Seconds())
			lastReport = time.Now()
		}
		time.Sleep(100 * time.Millisecond)
	}
	all := time.Since(start)
	fmt.Printf("ceiling_apps=%d\nceiling_children=%d\nceiling_written_s=%s\nceiling_available_s=%s\nceiling_apply_retries=%d\nceiling_apply_errors=%d\n",
		len(groups), len(objs), seconds(written), seconds(all), retries.Load(), errs.Load())
	return nil
}

// deploymentAvailable: the controller saw the current generation and every replica is updated and
// available (what `kubectl rollout status` waits for).
func deploymentAvailable(d *appsv1.Deployment) bool {
	replicas := int32(1)
	if d.Spec.Replicas != nil {
		replicas = *d.Spec.Replicas
	}
	s := d.Status
	return s.ObservedGeneration >= d.Generation && s.UpdatedReplicas >= replicas &&
		s.AvailableReplicas >= replicas && s.Replicas == s.UpdatedReplicas
}

func cmdDelete(args []string) error {
	fs := flag.NewFlagSet("delete", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig (admin: the wait lists ReplicaSets and pods)")
	file := fs.String("f", "", "the children, as `winapp-operator render` printed them")
	workers := fs.Int("workers", 16, "concurrent deletes")
	timeout := fs.Duration("timeout", 10*time.Minute, "how long the children and their pods may take to go")
	_ = fs.Parse(args)
	if *file == "" {
		return fmt.Errorf("-f is required")
	}
	cfg, err := restConfig(*kubeconfig)
	if err != nil {
		return err
	}
	objs, err := readObjects(*file)
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	md, err := metadata.NewForConfig(cfg)
	if err != nil {
		return err
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return err
	}
	groups, err := appGroups(objs, restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disc)))
	if err != nil {
		return err
	}
	ctx := context.Background()
	start := time.Now()
	jobs := make(chan []child)
	var errs atomic.Int64
	var wg sync.WaitGroup
	background := metav1.DeletePropagationBackground
	for range *workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for group := range jobs {
				for i := len(group) - 1; i >= 0; i-- {
					c := group[i]
					err := resourceFor(dyn, c).Delete(ctx, c.obj.GetName(), metav1.DeleteOptions{PropagationPolicy: &background})
					if err != nil && !apierrors.IsNotFound(err) {
						errs.Add(1)
						fmt.Fprintf(os.Stderr, "[delete] %s %s/%s: %v\n", c.obj.GetKind(), c.obj.GetNamespace(), c.obj.GetName(), err)
					}
				}
			}
		}()
	}
	for _, g := range groups {
		jobs <- g
	}
	close(jobs)
	wg.Wait()
	if errs.Load() > 0 {
		return fmt.Errorf("%d deletes failed", errs.Load())
	}
	namespaces := map[string]bool{}
	for _, o := range objs {
		if o.GetNamespace() != "" {
			namespaces[o.GetNamespace()] = true
		}
	}
	left, _, err := waitGone(ctx, md, "", namespaces, start.Add(*timeout))
	if err != nil {
		return fmt.Errorf("%w after %s; still there: %s", err, *timeout, left)
	}
	fmt.Printf("ceiling_deleted_s=%s\n", seconds(time.Since(start)))
	return nil
}

// The kinds that must be gone: the children, what the Deployments made, and the apps.
var goneKinds = []schema.GroupVersionResource{
	{Group: "apps", Version: "v1", Resource: "deployments"},
	{Group: "apps", Version: "v1", Resource: "replicasets"},
	{Version: "v1", Resource: "pods"},
	{Version: "v1", Resource: "services"},
	{Version: "v1", Resource: "configmaps"},
	{Version: "v1", Resource: "serviceaccounts"},
}

// remaining counts, by resource, the managed objects in the namespaces, and the WindowsApps that
// match appSelector (when given).
func remaining(ctx context.Context, md metadata.Interface, appSelector string, namespaces map[string]bool) (map[string]int, error) {
	out := map[string]int{}
	count := func(gvr schema.GroupVersionResource, selector string) error {
		list, err := md.Resource(gvr).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return fmt.Errorf("list %s: %w", gvr.Resource, err)
		}
		for _, item := range list.Items {
			if namespaces == nil || namespaces[item.Namespace] {
				out[gvr.Resource]++
			}
		}
		return nil
	}
	if appSelector != "" {
		if err := count(windowsApps, appSelector); err != nil {
			return nil, err
		}
	}
	for _, gvr := range goneKinds {
		if err := count(gvr, managedBy); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func describeCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	s := ""
	for _, k := range keys {
		if m[k] > 0 {
			s += fmt.Sprintf("%s=%d ", k, m[k])
		}
	}
	if s == "" {
		return "nothing"
	}
	return s[:len(s)-1]
}

// waitGone polls until nothing is left, or the deadline passes (the error then wraps errTimeout,
// and the string says what is left). appsGone is set when the WindowsApps were first seen gone.
func waitGone(ctx context.Context, md metadata.Interface, appSelector string, namespaces map[string]bool, deadline time.Time) (left string, appsGone time.Time, err error) {
	lastReport := time.Now()
	for {
		left, err := remaining(ctx, md, appSelector, namespaces)
		if err != nil {
			// A busy API server may time out a list: retry until the deadline.
			if time.Now().After(deadline) {
				return "unknown (" + err.Error() + ")", appsGone, errTimeout
			}
			fmt.Fprintf(os.Stderr, "[wait-gone] %v (retrying)\n", err)
			time.Sleep(time.Second)
			continue
		}
		total := 0
		for _, n := range left {
			total += n
		}
		if left["windowsapps"] == 0 && appsGone.IsZero() {
			appsGone = time.Now()
		}
		if total == 0 {
			return "", appsGone, nil
		}
		if time.Now().After(deadline) {
			return describeCounts(left), appsGone, errTimeout
		}
		if time.Since(lastReport) > 30*time.Second {
			fmt.Fprintf(os.Stderr, "[wait-gone] still there: %s\n", describeCounts(left))
			lastReport = time.Now()
		}
		time.Sleep(500 * time.Millisecond)
	}
}
