package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// sample is one line of a Prometheus text exposition.
type sample struct {
	labels map[string]string
	value  float64
}

// prom holds the samples of an exposition by metric name.
type prom map[string][]sample

// parseProm parses the Prometheus (and OpenMetrics) text format, enough for the API server's and
// the operator's /metrics: comments are skipped, timestamps ignored.
func parseProm(text string) prom {
	out := prom{}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, rest := line, ""
		labels := map[string]string{}
		if i := strings.IndexByte(line, '{'); i >= 0 {
			name = line[:i]
			j := closingBrace(line, i)
			if j < 0 {
				continue
			}
			labels = parseLabels(line[i+1 : j])
			rest = line[j+1:]
		} else if i := strings.IndexByte(line, ' '); i >= 0 {
			name, rest = line[:i], line[i:]
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		out[name] = append(out[name], sample{labels: labels, value: v})
	}
	return out
}

func closingBrace(s string, open int) int {
	inQuote := false
	for k := open + 1; k < len(s); k++ {
		switch {
		case s[k] == '\\' && inQuote:
			k++
		case s[k] == '"':
			inQuote = !inQuote
		case s[k] == '}' && !inQuote:
			return k
		}
	}
	return -1
}

func parseLabels(s string) map[string]string {
	out := map[string]string{}
	for len(s) > 0 {
		s = strings.TrimLeft(s, ", ")
		eq := strings.IndexByte(s, '=')
		if eq < 0 || eq+1 >= len(s) || s[eq+1] != '"' {
			break
		}
		key := strings.TrimSpace(s[:eq])
		var b strings.Builder
		k := eq + 2
		for ; k < len(s) && s[k] != '"'; k++ {
			if s[k] == '\\' && k+1 < len(s) {
				k++
				switch s[k] {
				case 'n':
					b.WriteByte('\n')
				default:
					b.WriteByte(s[k])
				}
				continue
			}
			b.WriteByte(s[k])
		}
		out[key] = b.String()
		if k >= len(s) {
			break
		}
		s = s[k+1:]
	}
	return out
}

// sum of every sample of a metric.
func (p prom) sum(name string) float64 {
	var t float64
	for _, s := range p[name] {
		t += s.value
	}
	return t
}

// by returns the samples of a metric by the value of one label.
func (p prom) by(name, label string) map[string]float64 {
	out := map[string]float64{}
	for _, s := range p[name] {
		out[s.labels[label]] += s.value
	}
	return out
}

// apiKey identifies a line of the API server request counts we keep.
type apiKey struct{ group, resource, subresource, verb, code string }

func (k apiKey) String() string {
	r := k.resource
	if k.subresource != "" {
		r += "/" + k.subresource
	}
	if k.group != "" {
		r += "." + k.group
	}
	return r
}

func cmdAPISnapshot(args []string) error {
	fs := flag.NewFlagSet("api-snapshot", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig that may read the API server's /metrics (admin)")
	_ = fs.Parse(args)
	cfg, err := restConfig(*kubeconfig)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	body, err := cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		return fmt.Errorf("GET /metrics: %w", err)
	}
	counts := map[apiKey]float64{}
	for _, s := range parseProm(string(body))["apiserver_request_total"] {
		if s.labels["dry_run"] != "" {
			continue
		}
		l := s.labels
		counts[apiKey{l["group"], l["resource"], l["subresource"], l["verb"], l["code"]}] += s.value
	}
	fmt.Println("# group\tresource\tsubresource\tverb\tcode\tcount")
	for k, v := range counts {
		fmt.Printf("%s\t%s\t%s\t%s\t%s\t%.0f\n", k.group, k.resource, k.subresource, k.verb, k.code, v)
	}
	return nil
}

// readAPISnapshot reads what api-snapshot printed.
func readAPISnapshot(path string) (map[apiKey]float64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[apiKey]float64{}
	for _, line := range strings.Split(string(data), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 6 {
			return nil, fmt.Errorf("%s: bad line %q", path, line)
		}
		v, err := strconv.ParseFloat(f[5], 64)
		if err != nil {
			return nil, fmt.Errorf("%s: bad count in %q", path, line)
		}
		out[apiKey{f[0], f[1], f[2], f[3], f[4]}] += v
	}
	return out, nil
}

func cmdEvents(args []string) error {
	fs := flag.NewFlagSet("events", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig that may list events in every namespace")
	controller := fs.String("controller", "winapp-operator", "reportingController")
	instance := fs.String("instance", "", "reportingInstance (the operator's --identity)")
	_ = fs.Parse(args)
	cfg, err := restConfig(*kubeconfig)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	list, err := cs.EventsV1().Events(metav1.NamespaceAll).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list events.k8s.io events: %w", err)
	}
	type agg struct{ events, writes int }
	byReason := map[string]*agg{}
	for i := range list.Items {
		e := &list.Items[i]
		if e.ReportingController != *controller || (*instance != "" && e.ReportingInstance != *instance) {
			continue
		}
		key := e.Type + "\t" + e.Reason
		a := byReason[key]
		if a == nil {
			a = &agg{}
			byReason[key] = a
		}
		a.events++
		a.writes += eventWrites(e)
	}
	fmt.Println("# type\treason\tevents\twrites")
	for _, k := range sortedKeys(byReason) {
		fmt.Printf("%s\t%d\t%d\n", k, byReason[k].events, byReason[k].writes)
	}
	return nil
}

// eventWrites: kube-rs' Recorder creates an Event once and patches it for each repeat, with
// series.count = 2, 3, ...; so one write without a series, series.count writes with one.
func eventWrites(e *eventsv1.Event) int {
	if e.Series != nil && e.Series.Count > 1 {
		return int(e.Series.Count)
	}
	return 1
}
