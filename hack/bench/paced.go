package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// templateHas: the Deployment's pod template carries the annotation key=value.
func templateHas(d *appsv1.Deployment, key, value string) bool {
	v, ok := d.Spec.Template.Annotations[key]
	return ok && v == value
}

// rolledOut: the Deployment controller observed the current generation and every replica is
// updated and available, with no old pod left.
func rolledOut(d *appsv1.Deployment) bool {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	s := d.Status
	return s.ObservedGeneration >= d.Generation && s.UpdatedReplicas >= want && s.AvailableReplicas >= want && s.Replicas <= want
}

// rolloutSample: of the Deployments, how many carry the change (changed), how many of those have
// not rolled it out yet (in flight), how many have (done).
type rolloutSample struct {
	total, changed, inFlight, done int
}

func sampleRollouts(ds []*appsv1.Deployment, key, value string) rolloutSample {
	var s rolloutSample
	for _, d := range ds {
		s.total++
		if !templateHas(d, key, value) {
			continue
		}
		s.changed++
		if rolledOut(d) {
			s.done++
		} else {
			s.inFlight++
		}
	}
	return s
}

// cmdRollouts samples the Deployments of the benchmark's namespaces while a change of every pod
// template (an annotation) rolls out: how many roll it at once, until all n have it rolled out.
func cmdRollouts(args []string) error {
	fs := flag.NewFlagSet("rollouts", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig")
	namespaces := fs.String("namespaces", "", "the benchmark's namespaces, comma-separated")
	annotation := fs.String("annotation", "", "the pod template annotation KEY=VALUE that marks the change")
	n := fs.Int("n", 0, "how many Deployments must have rolled the change out")
	interval := fs.Duration("interval", 500*time.Millisecond, "how often to sample")
	since := fs.String("since", "", "Unix time the clock starts at (default: now)")
	timeout := fs.Duration("timeout", 30*time.Minute, "how long to wait")
	raw := fs.String("raw", "", "file for the samples (TSV: seconds, changed, in flight, done)")
	_ = fs.Parse(args)
	key, value, ok := strings.Cut(*annotation, "=")
	if !ok || *n < 1 || *namespaces == "" {
		return fmt.Errorf("-annotation KEY=VALUE, -namespaces and -n (≥ 1) are required")
	}
	start, err := sinceEpoch(*since)
	if err != nil {
		return err
	}
	cfg, err := restConfig(*kubeconfig)
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var listers []func() ([]*appsv1.Deployment, error)
	for _, ns := range splitList(*namespaces) {
		f := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(ns))
		inf := f.Apps().V1().Deployments()
		lister := inf.Lister()
		listers = append(listers, func() ([]*appsv1.Deployment, error) { return lister.List(labels.Everything()) })
		go inf.Informer().Run(ctx.Done())
		if !cache.WaitForCacheSync(ctx.Done(), inf.Informer().HasSynced) {
			return fmt.Errorf("the Deployments of %s did not sync", ns)
		}
	}
	var out *os.File
	if *raw != "" {
		if out, err = os.Create(*raw); err != nil {
			return err
		}
		defer out.Close()
		fmt.Fprintln(out, "seconds\tchanged\tin_flight\tdone")
	}
	deadline := time.Now().Add(*timeout)
	most, samples := 0, 0
	var first time.Duration = -1
	for {
		var all []*appsv1.Deployment
		for _, list := range listers {
			ds, err := list()
			if err != nil {
				return err
			}
			all = append(all, ds...)
		}
		s := sampleRollouts(all, key, value)
		t := time.Since(start)
		samples++
		most = max(most, s.inFlight)
		if first < 0 && s.changed > 0 {
			first = t
		}
		if out != nil {
			fmt.Fprintf(out, "%s\t%d\t%d\t%d\n", seconds(t), s.changed, s.inFlight, s.done)
		}
		if s.done >= *n {
			fmt.Printf("paced_max_in_flight=%d\npaced_first_change_s=%s\npaced_all_done_s=%s\npaced_samples=%d\n", most, seconds(first), seconds(t), samples)
			return nil
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(os.Stderr, "%d of %d Deployments rolled the change out (%d in flight, at most %d at once)\n", s.done, *n, s.inFlight, most)
			return errTimeout
		}
		time.Sleep(*interval)
	}
}
