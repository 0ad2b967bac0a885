// Package deploycheck holds no code, only tests that keep the deployment
// files honest: the Kubernetes manifests fit together and their
// collector.yaml is accepted by the collector's own parser; the systemd
// units carry the settings docs/deploy.md promises and pass
// systemd-analyze verify (deploy/systemd/verify.sh); the agent.yaml shown
// in docs/install-pi.md is accepted by the agent's parser.
//
// It is a separate package so that selfmon's own tests do not depend on
// the agent and collector packages compiling.
package deploycheck
