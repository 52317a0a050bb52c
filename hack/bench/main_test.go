package main

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestParseProm(t *testing.T) {
	p := parseProm(`# HELP x
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="configmaps",scope="resource",subresource="",verb="APPLY",version="v1"} 5
apiserver_request_total{code="422",group="winapp.dev",resource="windowsapps",subresource="",verb="PATCH"} 2 1712345678
winapp_reconciles_total 9
winapp_child_writes_total{kind="Service"} 3
winapp_child_writes_total{kind="ConfigMap",note="a \"quoted\" } brace"} 4
# EOF
`)
	if got := p.sum("apiserver_request_total"); got != 7 {
		t.Errorf("sum = %v, want 7", got)
	}
	if got := p.sum("winapp_reconciles_total"); got != 9 {
		t.Errorf("reconciles = %v", got)
	}
	by := p.by("winapp_child_writes_total", "kind")
	if by["Service"] != 3 || by["ConfigMap"] != 4 {
		t.Errorf("by kind = %v", by)
	}
	if v := p["winapp_child_writes_total"][1].labels["note"]; v != `a "quoted" } brace` {
		t.Errorf("escaped label = %q", v)
	}
}

func TestHistogram(t *testing.T) {
	p := parseProm(`d_bucket{le="0.01"} 50
d_bucket{le="0.25"} 90
d_bucket{le="1.0"} 99
d_bucket{le="+Inf"} 100
d_sum 30
d_count 100
`)
	h, ok := readHistogram(p, "d")
	if !ok {
		t.Fatal("no histogram")
	}
	for q, want := range map[float64]string{0.5: "≤ 10 ms", 0.9: "≤ 250 ms", 0.99: "≤ 1 s", 0.999: "> 1 s"} {
		if got := h.quantile(q); got != want {
			t.Errorf("q%v = %q, want %q", q, got, want)
		}
	}
	if got := h.above(1); got != 0.01 {
		t.Errorf("above 1 s = %v", got)
	}
}

func TestOperatorWrite(t *testing.T) {
	cases := map[apiKey]bool{
		{"apps", "deployments", "", "APPLY", "200"}:                        true,
		{"apps", "deployments", "", "PUT", "200"}:                          false, // the deployment controller
		{"apps", "deployments", "status", "PUT", "200"}:                    false,
		{"winapp.dev", "windowsapps", "", "PATCH", "422"}:                  true,
		{"winapp.dev", "windowsapps", "status", "APPLY", ""}:               true,
		{"", "configmaps", "", "GET", "200"}:                               false,
		{"", "pods", "", "POST", "201"}:                                    false,
		{"events.k8s.io", "events", "", "POST", "201"}:                     false, // counted from the Event objects
		{"", "serviceaccounts", "", "APPLY", "201"}:                        true,
		{"coordination.k8s.io", "leases", "", "PUT", "200"}:                false,
		{"rbac.authorization.k8s.io", "rolebindings", "", "DELETE", "200"}: true,
	}
	for k, want := range cases {
		if got := operatorWrite(k); got != want {
			t.Errorf("operatorWrite(%v) = %v, want %v", k, got, want)
		}
	}
}

func TestEventWrites(t *testing.T) {
	if eventWrites(&eventsv1.Event{}) != 1 {
		t.Error("a new event is one write")
	}
	if eventWrites(&eventsv1.Event{Series: &eventsv1.EventSeries{Count: 3}}) != 3 {
		t.Error("count 3: a create and two patches")
	}
}

func TestNamespaces(t *testing.T) {
	got := benchNamespaces("b", 1000, 100)
	if len(got) != 10 || got[0] != "b-0" || got[9] != "b-9" {
		t.Errorf("%v", got)
	}
	if got := benchNamespaces("b", 1100, 100); got[0] != "b-00" || got[10] != "b-10" {
		t.Errorf("%v", got)
	}
}

func TestAppCondition(t *testing.T) {
	app := func(generation, observed int64, conds ...map[string]any) *unstructured.Unstructured {
		list := make([]any, len(conds))
		for i, c := range conds {
			list[i] = c
		}
		u := &unstructured.Unstructured{Object: map[string]any{
			"metadata": map[string]any{"name": "a", "namespace": "n", "generation": generation},
			"status":   map[string]any{"observedGeneration": observed, "conditions": list},
		}}
		return u
	}
	stalled := map[string]any{"type": "Stalled", "status": "True", "reason": "SecretMissing"}
	ready := map[string]any{"type": "Ready", "status": "False", "reason": "SecretMissing"}
	if ok, why := appCondition(app(2, 2, ready, stalled), "Stalled", "True", "SecretMissing"); !ok {
		t.Errorf("stalled at its generation: %s", why)
	}
	if ok, _ := appCondition(app(2, 2, stalled), "Stalled", "True", ""); !ok {
		t.Error("any reason")
	}
	if ok, why := appCondition(app(3, 2, stalled), "Stalled", "True", "SecretMissing"); ok || why != "generation not observed yet" {
		t.Errorf("an older generation: %v %s", ok, why)
	}
	if ok, why := appCondition(app(2, 2, stalled), "Stalled", "True", "NotAllowed"); ok || why != "Stalled=True/SecretMissing" {
		t.Errorf("another reason: %v %s", ok, why)
	}
	if ok, why := appCondition(app(1, 1, ready), "Stalled", "True", ""); ok || why != "no Stalled condition" {
		t.Errorf("no such condition: %v %s", ok, why)
	}
}

func TestQuantile(t *testing.T) {
	var twenty []float64
	for i := 1; i <= 20; i++ {
		twenty = append(twenty, float64(i))
	}
	for q, want := range map[float64]float64{0.5: 10, 0.9: 18, 0.95: 19, 0.99: 20, 1: 20, 0: 1} {
		if got := quantile(twenty, q); got != want {
			t.Errorf("q%v of 1..20 = %v, want %v", q, got, want)
		}
	}
	var thousand []float64
	for i := 1; i <= 1000; i++ {
		thousand = append(thousand, float64(i))
	}
	if got := quantile(thousand, 0.99); got != 990 {
		t.Errorf("p99 of 1..1000 = %v", got)
	}
	if got := quantile([]float64{7}, 0.5); got != 7 {
		t.Errorf("one value: %v", got)
	}
	if !math.IsNaN(quantile(nil, 0.5)) {
		t.Error("no values: NaN")
	}
}

func TestLatencySummary(t *testing.T) {
	var cs []change
	for i := 1; i <= 10; i++ {
		cs = append(cs, change{generation: int64(i), latency: time.Duration(i) * 100 * time.Millisecond})
	}
	got := strings.Join(latencySummary(cs, time.Minute), " ")
	for _, want := range []string{"latency_changes=10", "latency_timeouts=0", "latency_p50_s=0.500", "latency_p90_s=0.900", "latency_p99_s=1.000", "latency_max_s=1.000", "latency_mean_s=0.550"} {
		if !strings.Contains(got, want) {
			t.Errorf("%s: no %s", got, want)
		}
	}
	cs[3] = change{generation: 4, latency: time.Minute, timedOut: true}
	got = strings.Join(latencySummary(cs, time.Minute), " ")
	for _, want := range []string{"latency_timeouts=1", "latency_p99_s=> 60.00", "latency_max_s=> 60.00", "latency_p50_s=0.600"} {
		if !strings.Contains(got, want) {
			t.Errorf("with a timeout: %s: no %s", got, want)
		}
	}
}

func TestPerAppMinuteAndDiff(t *testing.T) {
	if got := perAppMinute(9600, 300, 120); got != 16 {
		t.Errorf("9600 requests of 300 apps in 2 minutes = %v per app and minute", got)
	}
	if !math.IsNaN(perAppMinute(1, 0, 60)) {
		t.Error("no apps: NaN")
	}
	a := parseProm(`winapp_api_requests_total{verb="get",resource="secrets"} 10
winapp_api_requests_total{verb="update",resource="leases"} 5
`)
	b := parseProm(`winapp_api_requests_total{verb="get",resource="secrets"} 70
winapp_api_requests_total{verb="get",resource="leases"} 3
winapp_api_requests_total{verb="update",resource="leases"} 5
`)
	d := promDiff(a, b, "winapp_api_requests_total", "verb")
	if len(d) != 1 || d["get"] != 63 {
		t.Errorf("by verb: %v", d)
	}
	if got := describeFloats(promDiff(a, b, "winapp_api_requests_total", "resource")); got != "secrets 60, leases 3" {
		t.Errorf("by resource: %q", got)
	}
}

func TestStalledApp(t *testing.T) {
	var b strings.Builder
	stalledApp(&b, "app-0001", "ns-0", "winapp.dev/bench", "true", 3)
	f := filepath.Join(t.TempDir(), "apps.yaml")
	if err := os.WriteFile(f, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	objs, err := readObjects(f)
	if err != nil || len(objs) != 1 {
		t.Fatalf("%v, %d objects", err, len(objs))
	}
	u := objs[0]
	if u.GetName() != "app-0001" || u.GetNamespace() != "ns-0" || u.GetLabels()["winapp.dev/bench"] != "true" {
		t.Errorf("metadata: %v", u.Object["metadata"])
	}
	vols, _, _ := unstructured.NestedSlice(u.Object, "spec", "volumes")
	if len(vols) != 3 {
		t.Fatalf("%d volumes", len(vols))
	}
	v := vols[2].(map[string]any)
	smb := v["smb"].(map[string]any)
	if v["name"] != "share-2" || v["mountPath"] != `D:\share-2` || smb["source"] != "//fs/share-2" ||
		smb["secretRef"].(map[string]any)["name"] != "missing-2" {
		t.Errorf("volume 2: %v", v)
	}
	if r, _, _ := unstructured.NestedInt64(u.Object, "spec", "replicas"); r != 0 {
		t.Errorf("replicas %d", r)
	}
}

func TestSampleRollouts(t *testing.T) {
	two := int32(2)
	d := func(annotated bool, generation, observed int64, updated, available, replicas int32) *appsv1.Deployment {
		x := &appsv1.Deployment{}
		x.Generation = generation
		x.Spec.Replicas = &two
		if annotated {
			x.Spec.Template.Annotations = map[string]string{"k": "v"}
		}
		x.Status = appsv1.DeploymentStatus{ObservedGeneration: observed, UpdatedReplicas: updated, AvailableReplicas: available, Replicas: replicas}
		return x
	}
	s := sampleRollouts([]*appsv1.Deployment{
		d(false, 1, 1, 2, 2, 2), // not changed yet
		d(true, 2, 1, 2, 2, 2),  // changed, not observed
		d(true, 2, 2, 1, 2, 3),  // half rolled
		d(true, 2, 2, 2, 2, 2),  // done
	}, "k", "v")
	if s != (rolloutSample{total: 4, changed: 3, inFlight: 2, done: 1}) {
		t.Fatalf("got %+v", s)
	}
}
