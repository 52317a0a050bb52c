package main

import (
	"testing"

	eventsv1 "k8s.io/api/events/v1"
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
