// winapp-bench: the measuring side of scripts/bench. scripts/bench orchestrates (cluster, nodes,
// the operator process, /proc figures); this binary does what needs a Kubernetes client or
// arithmetic:
//
//	gen           the benchmark's WindowsApps (or their namespaces) as YAML
//	ceiling       server-side-applies the children that `winapp-operator render` printed, with
//	              16 workers, then waits until every Deployment is available (the reference)
//	delete        deletes those children again and waits until they and their pods are gone
//	wait-ready    waits until N WindowsApps are Ready=True at their current generation
//	wait-condition  waits until N WindowsApps have a condition (Stalled=True/SecretMissing) at
//	              their current generation
//	wait-gone     waits until the benchmark's WindowsApps and every child and pod are gone
//	wait-metric   waits until a counter of the operator's /metrics reaches a value
//	wait-quiet    waits until a counter of the operator's /metrics stops moving
//	api-snapshot  the API server's apiserver_request_total, as TSV
//	events        the Events one operator instance reported (events.k8s.io), as TSV
//	rollouts      samples the Deployments while a change of every pod template rolls out: how
//	              many roll it at once (the paced scenario, --paced)
//	latency       changes one WindowsApp C times and measures each change until its generation is
//	              observed in its status (the fairness scenario's healthy app)
//	report        the markdown report of a run directory (either mode: results.env says which)
//
// gen -what stalled-apps writes the fairness scenario's Stalled apps (SMB volumes whose Secrets
// are missing).
//
// Waits print the seconds since -since (a Unix time with fractions) on stdout and exit 3 on a
// timeout, with a message on stderr that says what was still missing.
package main

import (
	"errors"
	"fmt"
	"os"
)

// errTimeout marks a wait that ran out of time (exit code 3).
var errTimeout = errors.New("timed out")

func usage() {
	fmt.Fprint(os.Stderr, `usage: winapp-bench COMMAND [flags]   (COMMAND -h lists its flags)
commands: gen, ceiling, delete, wait-ready, wait-condition, wait-gone, wait-metric, wait-quiet, api-snapshot, events, latency, rollouts, report
`)
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	cmd, args := os.Args[1], os.Args[2:]
	commands := map[string]func([]string) error{
		"gen":            cmdGen,
		"ceiling":        cmdCeiling,
		"delete":         cmdDelete,
		"wait-ready":     cmdWaitReady,
		"wait-condition": cmdWaitCondition,
		"wait-gone":      cmdWaitGone,
		"wait-metric":    cmdWaitMetric,
		"wait-quiet":     cmdWaitQuiet,
		"api-snapshot":   cmdAPISnapshot,
		"events":         cmdEvents,
		"latency":        cmdLatency,
		"rollouts":       cmdRollouts,
		"report":         cmdReport,
	}
	if cmd == "-h" || cmd == "--help" || cmd == "help" {
		usage()
		return
	}
	run, ok := commands[cmd]
	if !ok {
		usage()
		os.Exit(2)
	}
	if err := run(args); err != nil {
		fmt.Fprintf(os.Stderr, "winapp-bench %s: %v\n", cmd, err)
		if errors.Is(err, errTimeout) {
			os.Exit(3)
		}
		os.Exit(1)
	}
}
