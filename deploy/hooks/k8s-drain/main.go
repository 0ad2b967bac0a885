// Command k8s-drain is an emberwatch exec hook that moves Kubernetes work
// off the nodes of a power domain, through kubectl.
//
//	hooks:
//	  - name: k8s-drain
//	    command: [/usr/local/lib/ember/k8s-drain, -timeout, 10m]
//	    phases: [prestage, evacuate, abort]
//	    timeout: 11m
//	    env: {KUBECONFIG: /etc/ember/kubeconfig}
//
// It reads the evacuation JSON on stdin. Targets are node names, or
// "selector:<label selector>" for every node with that label; targets that
// are not nodes of the cluster (plain hosts) are skipped.
//
//   - prestage: cordon the nodes (no new pods land there) and mark them
//     with the annotation ember.io/cordoned-by=<evacuation id>.
//   - evacuate: kubectl drain, which uses the Eviction API: a pod whose
//     PodDisruptionBudget would be violated is not deleted; the API answers
//     429 and kubectl retries until -timeout. This hook never passes
//     --disable-eviction or --force, which would bypass budgets or delete
//     unmanaged pods. Urgency emergency shortens the pods' grace period.
//   - abort: uncordon only the nodes this evacuation cordoned (the
//     annotation), so a node an operator cordoned for other reasons stays.
//   - complete: nothing; nodes stay cordoned until an operator uncordons
//     them after the battery system is safe.
//
// With EMBER_DRY_RUN=1 (drills) it prints the kubectl commands it would
// run and runs only read-only ones (get nodes). Exit status 0 means done.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"time"

	"github.com/emberwatch/emberwatch/internal/wire"
)

const annotation = "ember.io/cordoned-by"

var (
	nodeRE     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`)
	selectorRE = regexp.MustCompile(`^[A-Za-z0-9./_-]+(=|==|!=)[A-Za-z0-9._-]*(,[A-Za-z0-9./_-]+(=|==|!=)[A-Za-z0-9._-]*)*$`)
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

type hook struct {
	kubectl string
	dryRun  bool
	timeout time.Duration
	out     io.Writer
	ctx     context.Context
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("k8s-drain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	timeout := fs.Duration("timeout", 10*time.Minute, "kubectl drain timeout per node")
	kubectl := fs.String("kubectl", envOr("KUBECTL", "kubectl"), "kubectl `binary` ($KUBECTL)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var ev wire.Evacuation
	if err := json.NewDecoder(io.LimitReader(stdin, 1<<20)).Decode(&ev); err != nil {
		fmt.Fprintf(stderr, "k8s-drain: evacuation JSON on stdin: %v\n", err)
		return 2
	}
	h := &hook{kubectl: *kubectl, dryRun: ev.DryRun || os.Getenv("EMBER_DRY_RUN") == "1", timeout: *timeout, out: stdout, ctx: ctx}
	if err := h.handle(&ev); err != nil {
		fmt.Fprintf(stderr, "k8s-drain: %s %s: %v\n", ev.Phase, ev.ID, err)
		return 1
	}
	return 0
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func (h *hook) handle(ev *wire.Evacuation) error {
	if len(ev.Targets) == 0 {
		return errors.New("empty target list: refusing (an empty list never means every node)")
	}
	nodes, err := h.nodes(ev.Targets)
	if err != nil {
		return err
	}
	if len(nodes) == 0 {
		fmt.Fprintf(h.out, "no Kubernetes node among the targets of %s; nothing to do\n", ev.ID)
		return nil
	}
	var errs []error
	for _, n := range nodes {
		switch ev.Phase {
		case wire.PhasePrestage:
			errs = append(errs, h.kube(true, "cordon", n), h.kube(true, "annotate", "--overwrite", "node", n, annotation+"="+ev.ID))
		case wire.PhaseEvacuate:
			// Cordon again: the prestage may have been skipped (emergency).
			errs = append(errs, h.kube(true, "cordon", n), h.kube(true, "annotate", "--overwrite", "node", n, annotation+"="+ev.ID))
			args := []string{"drain", n, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=" + h.timeout.String()}
			if ev.Urgency == wire.UrgencyEmergency {
				args = append(args, "--grace-period=30")
			}
			errs = append(errs, h.kube(true, args...))
		case wire.PhaseAbort:
			owner, err := h.output("get", "node", n, "-o", "jsonpath={.metadata.annotations.ember\\.io/cordoned-by}")
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if strings.TrimSpace(owner) != ev.ID {
				fmt.Fprintf(h.out, "node %s was not cordoned by %s; leaving it as it is\n", n, ev.ID)
				continue
			}
			errs = append(errs, h.kube(true, "uncordon", n), h.kube(true, "annotate", "node", n, annotation+"-"))
		case wire.PhaseComplete:
			fmt.Fprintf(h.out, "evacuation %s complete; node %s stays cordoned until an operator uncordons it\n", ev.ID, n)
		default:
			return fmt.Errorf("unknown phase %q", ev.Phase)
		}
	}
	return errors.Join(errs...)
}

// nodes resolves targets to node names known to the cluster.
func (h *hook) nodes(targets []string) ([]string, error) {
	known := map[string]bool{}
	out, err := h.output("get", "nodes", "-o", "jsonpath={.items[*].metadata.name}")
	if err != nil {
		return nil, err
	}
	for _, n := range strings.Fields(out) {
		known[n] = true
	}
	seen := map[string]bool{}
	var nodes []string
	add := func(n string) {
		if known[n] && !seen[n] {
			seen[n] = true
			nodes = append(nodes, n)
		}
	}
	for _, t := range targets {
		if sel, ok := strings.CutPrefix(t, "selector:"); ok {
			if !selectorRE.MatchString(sel) {
				return nil, fmt.Errorf("invalid label selector %q", sel)
			}
			out, err := h.output("get", "nodes", "-l", sel, "-o", "jsonpath={.items[*].metadata.name}")
			if err != nil {
				return nil, err
			}
			for _, n := range strings.Fields(out) {
				add(n)
			}
			continue
		}
		if !nodeRE.MatchString(t) {
			return nil, fmt.Errorf("invalid target %q", t) // never let a target look like a flag
		}
		add(t)
	}
	if len(nodes) > 0 && len(nodes) == len(known) && len(known) > 1 {
		return nil, fmt.Errorf("the targets cover all %d nodes of the cluster: refusing", len(known))
	}
	return nodes, nil
}

// kube runs a mutating kubectl command, or prints it in dry-run mode.
func (h *hook) kube(mutating bool, args ...string) error {
	if mutating && h.dryRun {
		fmt.Fprintf(h.out, "dry run: would run: %s %s\n", h.kubectl, strings.Join(args, " "))
		return nil
	}
	cmd := exec.CommandContext(h.ctx, h.kubectl, args...)
	cmd.Stdout, cmd.Stderr = h.out, h.out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w", h.kubectl, strings.Join(args, " "), err)
	}
	return nil
}

func (h *hook) output(args ...string) (string, error) {
	cmd := exec.CommandContext(h.ctx, h.kubectl, args...)
	cmd.Stderr = h.out
	b, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", h.kubectl, strings.Join(args, " "), err)
	}
	return string(b), nil
}
