package main

import (
	"bufio"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// The files scripts/bench leaves in a run directory, read by `report`:
//
//	results.env               key=value figures (see scripts/bench)
//	api-<phase>-<at>.tsv      api-snapshot at the start and end of each phase
//	metrics-<at>.txt          the operator's /metrics
//	events-<at>.tsv           the Events an operator instance reported

var writeVerbs = map[string]bool{"POST": true, "PUT": true, "PATCH": true, "APPLY": true, "DELETE": true, "DELETECOLLECTION": true}

// operatorWrite says whether a write is the operator's: the resources only it writes in this
// benchmark, and on Deployments the verbs it uses (server-side apply; the deployment controller
// writes the revision annotation with PUT and the status subresource).
func operatorWrite(k apiKey) bool {
	if !writeVerbs[k.verb] {
		return false
	}
	switch k.group + "/" + k.resource + "/" + k.subresource {
	case "winapp.dev/windowsapps/", "winapp.dev/windowsapps/status",
		"/services/", "/configmaps/", "/serviceaccounts/",
		"rbac.authorization.k8s.io/rolebindings/", "rbac.authorization.k8s.io/clusterroles/",
		"networking.k8s.io/networkpolicies/", "/persistentvolumeclaims/", "/persistentvolumes/",
		"windows.k8s.io/gmsacredentialspecs/":
		return true
	case "apps/deployments/":
		return k.verb == "APPLY" || k.verb == "PATCH" || k.verb == "DELETE"
	}
	return false
}

type runDir struct {
	dir string
	env map[string]string
}

func (r runDir) str(key string) string { return r.env[key] }

func (r runDir) num(key string) (float64, bool) {
	v, err := strconv.ParseFloat(r.env[key], 64)
	return v, err == nil
}

func (r runDir) api(name string) map[apiKey]float64 {
	m, err := readAPISnapshot(filepath.Join(r.dir, name))
	if err != nil {
		return nil
	}
	return m
}

// apiDiff: what was counted between two snapshots (nil when either is missing).
func (r runDir) apiDiff(from, to string) map[apiKey]float64 {
	a, b := r.api(from), r.api(to)
	if a == nil || b == nil {
		return nil
	}
	out := map[apiKey]float64{}
	for k, v := range b {
		if d := v - a[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

func (r runDir) metrics(name string) prom {
	data, err := os.ReadFile(filepath.Join(r.dir, name))
	if err != nil {
		return nil
	}
	return parseProm(string(data))
}

// eventWritesIn sums what `events` printed: events and writes.
func (r runDir) eventWritesIn(name string) (events, writes int, ok bool) {
	f, err := os.Open(filepath.Join(r.dir, name))
	if err != nil {
		return 0, 0, false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := s.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Split(line, "\t")
		if len(fields) != 4 {
			continue
		}
		e, _ := strconv.Atoi(fields[2])
		w, _ := strconv.Atoi(fields[3])
		events += e
		writes += w
	}
	return events, writes, true
}

func readEnv(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			env[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return env, nil
}

// writesSummary: the operator's writes in a diff, their total, and a description of the failed ones.
func writesSummary(d map[apiKey]float64) (total float64, byRes map[string]map[string]float64, failed map[string]float64) {
	byRes = map[string]map[string]float64{}
	failed = map[string]float64{}
	for k, v := range d {
		if !operatorWrite(k) {
			continue
		}
		total += v
		res := k.String()
		if byRes[res] == nil {
			byRes[res] = map[string]float64{}
		}
		byRes[res][k.verb] += v
		if c, _ := strconv.Atoi(k.code); c >= 400 {
			failed[fmt.Sprintf("%s %s %s", k.code, k.verb, res)] += v
		}
	}
	return
}

func fmtFailed(failed map[string]float64) string {
	if len(failed) == 0 {
		return "0"
	}
	var parts []string
	var total float64
	for _, k := range sortedKeys(failed) {
		parts = append(parts, fmt.Sprintf("%.0f × %s", failed[k], k))
		total += failed[k]
	}
	return fmt.Sprintf("%.0f (%s)", total, strings.Join(parts, "; "))
}

// histogram quantiles from cumulative buckets: the upper bound of the bucket that holds the
// quantile (the histogram cannot say more), the mean, and the share above a bound.
type histogram struct {
	bounds []float64 // ascending, +Inf last
	counts []float64 // cumulative
	sum    float64
	count  float64
}

func readHistogram(p prom, name string) (histogram, bool) {
	var h histogram
	type b struct{ le, n float64 }
	var bs []b
	for _, s := range p[name+"_bucket"] {
		le, err := strconv.ParseFloat(s.labels["le"], 64)
		if s.labels["le"] == "+Inf" {
			le, err = math.Inf(1), nil
		}
		if err == nil {
			bs = append(bs, b{le, s.value})
		}
	}
	if len(bs) == 0 {
		return h, false
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
	for _, x := range bs {
		h.bounds = append(h.bounds, x.le)
		h.counts = append(h.counts, x.n)
	}
	h.sum, h.count = p.sum(name+"_sum"), p.sum(name+"_count")
	return h, h.count > 0
}

func (h histogram) quantile(q float64) string {
	target := q * h.count
	for i, c := range h.counts {
		if c >= target {
			if math.IsInf(h.bounds[i], 1) {
				return fmt.Sprintf("> %s", fmtDuration(h.bounds[i-1]))
			}
			return "≤ " + fmtDuration(h.bounds[i])
		}
	}
	return "?"
}

func (h histogram) above(bound float64) float64 {
	for i, le := range h.bounds {
		if le == bound {
			return (h.count - h.counts[i]) / h.count
		}
	}
	return math.NaN()
}

func fmtDuration(s float64) string {
	if s < 1 {
		return fmt.Sprintf("%.0f ms", s*1000)
	}
	return fmt.Sprintf("%g s", s)
}

func fmtSeconds(v float64, ok bool) string {
	if !ok {
		return "—"
	}
	return fmt.Sprintf("%.1f s", v)
}

func cmdReport(args []string) error {
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	dir := fs.String("dir", "", "run directory of scripts/bench")
	_ = fs.Parse(args)
	env, err := readEnv(filepath.Join(*dir, "results.env"))
	if err != nil {
		return err
	}
	r := runDir{dir: *dir, env: env}
	if r.str("mode") == "fairness" {
		return reportFairness(os.Stdout, r)
	}
	n, _ := r.num("n")
	// --no-pods runs no ceiling: the children are counted from render's output.
	children, okCh := r.num("children")
	if !okCh {
		children, _ = r.num("ceiling_children")
	}
	w := os.Stdout
	p := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }

	p("## winapp-operator benchmark: N = %.0f WindowsApps", n)
	p("")
	opArgs := "default flags"
	if a := r.str("operator_args"); a != "" {
		opArgs = "`" + a + "`"
	}
	p("%s; commit %s; %s CPUs, load average %s at the start, %s at the end; %s Windows Server 2022 KWOK nodes (%s pods each); apps in %s namespace(s); operator release build, %s%s.",
		r.str("started_at"), r.str("commit"), r.str("nproc"), r.str("load_start"), r.str("load_end"), r.str("win_nodes"),
		r.str("node_pods"), r.str("namespaces_count"), opArgs, r.str("secret_note"))
	if r.str("mode") == "nopods" {
		p("")
		p("Apps with `replicas: 0` (`--no-pods`): every child is made, no pod runs, and no ceiling is measured. Converged: every app Ready at its current generation (`status.observedGeneration` = `metadata.generation`; kube-controller-manager has observed each Deployment, with its client QPS raised to %s); settled: the operator's write counters unchanged for %s s.",
			r.str("kcm_qps"), r.str("quiet_for"))
	}
	p("")

	ceilWritten, okW := r.num("ceiling_written_s")
	ceilAvail, okA := r.num("ceiling_available_s")
	opReady, okR := r.num("op_ready_s")
	ratio := func() string {
		if !okA || !okR || ceilAvail == 0 || opReady == 0 {
			return "—"
		}
		return fmt.Sprintf("%.2f (ceiling/operator %.2f)", opReady/ceilAvail, ceilAvail/opReady)
	}
	p("| figure | ceiling (%s SSA workers) | operator | operator / ceiling |", r.str("workers"))
	p("|---|---|---|---|")
	opWritten, okOW := r.num("op_children_written_s")
	writtenRatio := "—"
	if okW && okOW && ceilWritten > 0 {
		writtenRatio = fmt.Sprintf("%.2f", opWritten/ceilWritten)
	}
	opWrittenText := fmtSeconds(opWritten, okOW)
	if !okOW && r.str("op_children_written_s") != "" {
		opWrittenText = r.str("op_children_written_s")
	}
	p("| children written (%.0f children of %.0f apps; operator: `winapp_child_writes_total` reached it, from process start) | %s | %s | %s |",
		children, n, fmtSeconds(ceilWritten, okW), opWrittenText, writtenRatio)
	p("| all available (ceiling) / all Ready at the current generation (operator, from process start) | %s | %s | %s |",
		fmtSeconds(ceilAvail, okA), fmtSeconds(opReady, okR), ratio())

	quiet, okQ := r.num("op_quiet_s")
	p("| operator settled: its last write (child and status write counters then unchanged for %s s), from process start | — | %s | — |", r.str("quiet_for"), fmtSeconds(quiet, okQ))
	hwm, okH := r.num("op_hwm_quiet_kib")
	hwmReady, _ := r.num("op_hwm_ready_kib")
	if okH {
		p("| operator peak RSS (VmHWM) at all Ready / settled | — | %.1f MiB / %.1f MiB | — |", hwmReady/1024, hwm/1024)
	}
	if anon, okA := r.num("op_rss_anon_quiet_kib"); okA {
		file, _ := r.num("op_rss_file_quiet_kib")
		p("| operator resident when settled: anonymous (heap) / file-backed (mostly its binary's text) | — | %.1f MiB / %.1f MiB | — |", anon/1024, file/1024)
		if n > 0 {
			p("| operator heap per app when settled (anonymous resident / N) | — | %.1f KiB | — |", anon/n)
		}
	}
	cpuReady, okC := r.num("op_cpu_ready_s")
	cpuQuiet, _ := r.num("op_cpu_quiet_s")
	if okC {
		p("| operator CPU (utime+stime) until all Ready / settled | — | %.1f s / %.1f s | — |", cpuReady, cpuQuiet)
	}
	mReady, mQuiet := r.metrics("metrics-op-ready.txt"), r.metrics("metrics-op-quiet.txt")
	if mReady != nil && mQuiet != nil && n > 0 {
		p("| reconciles per app until all Ready / settled | — | %.2f / %.2f (%.0f / %.0f) | — |",
			mReady.sum("winapp_reconciles_total")/n, mQuiet.sum("winapp_reconciles_total")/n,
			mReady.sum("winapp_reconciles_total"), mQuiet.sum("winapp_reconciles_total"))
	}
	if h, ok := readHistogram(mQuiet, "winapp_reconcile_duration_seconds"); ok {
		p("| reconcile duration (histogram, settled): p50 / p90 / p99; mean; share > 250 ms / > 1 s / > 10 s | — | %s / %s / %s; mean %s; %.1f %% / %.1f %% / %.1f %% | — |",
			h.quantile(0.5), h.quantile(0.9), h.quantile(0.99), fmtDuration(h.sum/h.count),
			100*h.above(0.25), 100*h.above(1), 100*h.above(10))
	}
	if mQuiet != nil {
		f := mQuiet.by("winapp_reconcile_failures_total", "category")
		parts := []string{}
		for _, k := range sortedKeys(f) {
			if f[k] > 0 {
				parts = append(parts, fmt.Sprintf("%s %.0f", k, f[k]))
			}
		}
		failures := "0"
		if len(parts) > 0 {
			failures = strings.Join(parts, ", ")
		}
		p("| failed reconciles by category (`winapp_reconcile_failures_total`) | — | %s | — |", failures)
		// Older operators have neither metric: the rows are left out.
		if t := mQuiet.by("winapp_triggers_total", "source"); len(t) > 0 && n > 0 {
			parts := []string{}
			for _, k := range sortedKeys(t) {
				parts = append(parts, fmt.Sprintf("%s %.2f", k, t[k]/n))
			}
			p("| changes that may queue reconciles, per app, by watch (`winapp_triggers_total`, settled) | — | %s | — |", strings.Join(parts, ", "))
		}
		if q := mQuiet.by("winapp_api_requests_total", "verb"); len(q) > 0 {
			parts := []string{}
			for _, k := range sortedKeys(q) {
				parts = append(parts, fmt.Sprintf("%s %.0f", k, q[k]))
			}
			p("| the operator's requests by verb, as it counts them (`winapp_api_requests_total`, settled; events and leases included) | — | %s | — |", strings.Join(parts, ", "))
		}
	}

	ceilDiff := r.apiDiff("api-ceiling-0.tsv", "api-ceiling-1.tsv")
	opDiff := r.apiDiff("api-op-0.tsv", "api-op-quiet.tsv")
	readyDiff := r.apiDiff("api-op-0.tsv", "api-op-ready.tsv")
	ceilTotal, _, ceilFailed := writesSummary(ceilDiff)
	opTotal, opByRes, opFailed := writesSummary(opDiff)
	readyTotal, _, _ := writesSummary(readyDiff)
	_, evWrites, evOK := r.eventWritesIn("events-op.tsv")
	baseline := children + 2*n
	if opDiff != nil && baseline > 0 {
		all := opTotal + float64(evWrites)
		p("| API writes until settled / (children + 2 per app = %.0f): to its resources (children, WindowsApp, status); with its Events | %.0f (%.2f) | %.0f (%.2f; %.0f before all Ready); %.0f (%.2f) | %.2f; %.2f |",
			baseline, ceilTotal, ceilTotal/baseline, opTotal, opTotal/baseline, readyTotal, all, all/baseline,
			opTotal/math.Max(ceilTotal, 1), all/math.Max(ceilTotal, 1))
	}
	if opDiff != nil {
		p("| failed writes (HTTP 4xx/5xx on those resources) | %s | %s | — |", fmtFailed(ceilFailed), fmtFailed(opFailed))
	}
	rsDiff := r.apiDiff("api-restart-0.tsv", "api-restart-1.tsv")
	rsTotal, rsByRes, _ := writesSummary(rsDiff)
	_, rsEv, _ := r.eventWritesIn("events-restart.tsv")
	verified, okV := r.num("restart_verified_s")
	if rsDiff != nil {
		t := fmtSeconds(verified, okV)
		if !okV {
			t = "not reached: " + r.str("restart_verified_s")
		}
		var mRestart prom = r.metrics("metrics-restart.txt")
		p("| restart over the converged apps: writes / time until every app was re-verified Ready (`winapp_apps{ready=\"True\"}` = N, from process start) | — | %.0f / %s (%.0f reconciles, CPU %s s, VmHWM %s MiB) | — |",
			rsTotal+float64(rsEv), t, mRestart.sum("winapp_reconciles_total"), r.str("restart_cpu_s"), kibToMiB(r.str("restart_hwm_kib")))
		if rsTotal+float64(rsEv) > 0 {
			p("| restart writes by resource | — | %s | — |", describeByRes(rsByRes, rsEv))
		}
		if r.str("restart_synced_s") != "" {
			p("| restart: caches synced after (how they filled) | — | %s s (%s) | — |", r.str("restart_synced_s"), r.str("restart_lists"))
		}
		if paged, okP := r.num("restart_paged_verified_s"); okP || r.str("restart_paged_verified_s") != "" {
			ratio := "—"
			if okP && okV && paged > 0 {
				ratio = fmt.Sprintf("%.2f", verified/paged)
			}
			p("| reference of the same run: the restart with `--initial-list paged`: all re-verified / caches synced (CPU, VmHWM) | — | %s / %s s (CPU %s s, VmHWM %s MiB) | %s (restart / reference) |",
				fmtSeconds(paged, okP), r.str("restart_paged_synced_s"), r.str("restart_paged_cpu_s"), kibToMiB(r.str("restart_paged_hwm_kib")), ratio)
		}
	}
	gone, okG := r.num("delete_gone_s")
	appsGone, okAG := r.num("delete_apps_gone_s")
	ceilDel, okD := r.num("ceiling_deleted_s")
	goneText := fmtSeconds(gone, okG)
	if okAG {
		goneText += fmt.Sprintf(" (the WindowsApps themselves: %.1f s)", appsGone)
	}
	p("| delete all: time until the apps, their children and pods are gone (children by the garbage collector) | %s (children deleted by the client) | %s | %s |",
		fmtSeconds(ceilDel, okD), goneText, func() string {
			if okD && okG && ceilDel > 0 {
				return fmt.Sprintf("%.2f", gone/ceilDel)
			}
			return "—"
		}())
	p("")

	// Writes by resource and verb.
	if opDiff != nil {
		p("Operator writes until settled, by resource and verb (API server's `apiserver_request_total`, all codes; Events counted from the Event objects this operator instance reported%s):",
			map[bool]string{true: "", false: ", not found"}[evOK])
		p("")
		p("| resource | writes | per app | operator's own counter |")
		p("|---|---|---|---|")
		own := mQuiet.by("winapp_child_writes_total", "kind")
		ownFor := floatMap{
			"services": own["Service"], "configmaps": own["ConfigMap"], "serviceaccounts": own["ServiceAccount"],
			"deployments.apps": own["Deployment"], "windowsapps/status.winapp.dev": mQuiet.sum("winapp_status_writes_total"),
		}.fmtFloat()
		ownFor["windowsapps.winapp.dev"] = "— (no metric)"
		for _, res := range sortedKeys(opByRes) {
			verbs := opByRes[res]
			var total float64
			var parts []string
			for _, v := range sortedKeys(verbs) {
				total += verbs[v]
				parts = append(parts, fmt.Sprintf("%s %.0f", v, verbs[v]))
			}
			p("| %s | %s | %.2f | %s |", res, strings.Join(parts, ", "), total/math.Max(n, 1), ownFor[res])
		}
		if evOK {
			p("| events.events.k8s.io (this operator's) | %d | %.2f | — |", evWrites, float64(evWrites)/math.Max(n, 1))
		}
		p("")
		// kube-scheduler writes events.k8s.io Events too; the ceiling phase shows how many.
		evAll := func(d map[apiKey]float64) (t float64) {
			for k, v := range d {
				if k.group == "events.k8s.io" && k.resource == "events" && writeVerbs[k.verb] {
					t += v
				}
			}
			return
		}
		p("Check of the Events' attribution: the API server counted %.0f events.k8s.io writes in the operator phase (every client) and %.0f in the ceiling phase (kube-scheduler's, without an operator): %.0f left for the operator, which reported %d.",
			evAll(opDiff), evAll(ceilDiff), evAll(opDiff)-evAll(ceilDiff), evWrites)
		p("")
	}

	// Every client's writes, to check the attribution.
	p("<details><summary>All API writes by resource, verb and code (every client: the operator, kube-controller-manager, kube-scheduler, kwok, the benchmark)</summary>")
	p("")
	phases := []struct{ name, from, to string }{
		{"ceiling", "api-ceiling-0.tsv", "api-ceiling-1.tsv"},
		{"operator until settled", "api-op-0.tsv", "api-op-quiet.tsv"},
		{"restart", "api-restart-0.tsv", "api-restart-1.tsv"},
		{"delete all", "api-delete-0.tsv", "api-delete-1.tsv"},
	}
	diffs := make([]map[apiKey]float64, len(phases))
	rows := map[string]bool{}
	for i, ph := range phases {
		diffs[i] = r.apiDiff(ph.from, ph.to)
		for k := range diffs[i] {
			if writeVerbs[k.verb] {
				rows[k.String()+"\t"+k.verb+"\t"+k.code] = true
			}
		}
	}
	header := "| resource | verb | code |"
	sep := "|---|---|---|"
	for _, ph := range phases {
		header += " " + ph.name + " |"
		sep += "---|"
	}
	p("%s", header)
	p("%s", sep)
	for _, row := range sortedKeys(rows) {
		f := strings.Split(row, "\t")
		line := fmt.Sprintf("| %s | %s | %s |", f[0], f[1], f[2])
		for _, d := range diffs {
			var v float64
			for k, c := range d {
				if k.String() == f[0] && k.verb == f[1] && k.code == f[2] {
					v += c
				}
			}
			line += fmt.Sprintf(" %.0f |", v)
		}
		p("%s", line)
	}
	p("")
	p("</details>")
	p("")
	p("Wall time: %s s in all (cluster and nodes %s s, ceiling %s s, operator %s s, restart %s s, delete %s s).",
		r.str("wall_total_s"), r.str("wall_setup_s"), r.str("wall_ceiling_s"), r.str("wall_op_s"), r.str("wall_restart_s"), r.str("wall_delete_s"))
	return nil
}

type floatMap map[string]float64

func (m floatMap) fmtFloat() map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = fmt.Sprintf("%.0f", v)
	}
	return out
}

func describeByRes(byRes map[string]map[string]float64, events int) string {
	var parts []string
	for _, res := range sortedKeys(byRes) {
		for _, v := range sortedKeys(byRes[res]) {
			parts = append(parts, fmt.Sprintf("%s %s %.0f", v, res, byRes[res][v]))
		}
	}
	if events > 0 {
		parts = append(parts, fmt.Sprintf("Events %d", events))
	}
	return strings.Join(parts, ", ")
}

func kibToMiB(s string) string {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return "—"
	}
	return fmt.Sprintf("%.1f", v/1024)
}
