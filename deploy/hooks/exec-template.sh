#!/bin/sh
# emberwatch exec hook template. Copy, rename, fill in the do_* functions.
#
# The collector (or an agent's local fallback) runs this program directly,
# never through a shell command line, with:
#   stdin             the evacuation JSON (id, site, domain, phase, urgency,
#                     reason, targets, time, drill, dry_run, issuer, signature)
#   EMBER_EVAC_ID     evacuation id (the same for every phase of one evacuation)
#   EMBER_PHASE       prestage | evacuate | abort | complete
#   EMBER_DOMAIN      power domain id
#   EMBER_SITE, EMBER_URGENCY (normal | emergency), EMBER_TARGETS_COUNT
#   EMBER_DRILL       1 during drills
#   EMBER_DRY_RUN     1: print what you would do, change nothing
# Exit 0 when done. Non-zero makes the caller retry (at most 2 more times,
# with backoff); each (evacuation, phase) runs at most once otherwise.
# The hook is killed, with every process it started, at its timeout.
# Only PATH, HOME, LANG, LC_ALL, TZ, KUBECONFIG, TMPDIR and the hook's
# configured env are passed through.
set -eu

payload=$(mktemp)
trap 'rm -f "$payload"' EXIT
cat > "$payload"

# Targets, one per line (needs jq; without it, parse "$payload" yourself).
targets() { jq -r '.targets[]' < "$payload"; }

run() {
	# Every side effect goes through run, so dry runs only print.
	if [ "${EMBER_DRY_RUN:-0}" = 1 ]; then
		echo "dry run: would run: $*"
	else
		"$@"
	fi
}

do_prestage() {
	# Stop placing new work on the domain: e.g. disable the scheduler's
	# placement on these hosts, freeze deploys.
	for t in $(targets); do
		run echo "prestage: mark $t unschedulable"
	done
}

do_evacuate() {
	# Move work away. Prefer the platform's graceful mechanisms
	# (live migration, kubectl drain with PodDisruptionBudgets).
	for t in $(targets); do
		run echo "evacuate: migrate work off $t (urgency ${EMBER_URGENCY:-normal})"
	done
}

do_abort() {
	# Undo prestage for what this evacuation changed; work already moved
	# stays where it is.
	for t in $(targets); do
		run echo "abort: mark $t schedulable again"
	done
}

do_complete() {
	echo "evacuation $EMBER_EVAC_ID of $EMBER_DOMAIN complete"
}

case "${EMBER_PHASE:-}" in
prestage) do_prestage ;;
evacuate) do_evacuate ;;
abort) do_abort ;;
complete) do_complete ;;
*)
	echo "unknown phase '${EMBER_PHASE:-}'" >&2
	exit 2
	;;
esac
