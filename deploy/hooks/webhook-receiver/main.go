// Command webhook-receiver is an example receiver of emberwatch evacuation
// webhooks: it verifies the Ember-Signature header (HMAC-SHA256 over
// "<t>.<body>", 5 minute tolerance, replay refused by event id) before
// trusting the body, then hands the evacuation to the site's tooling (here:
// it logs it and, optionally, runs a command with the JSON on stdin).
//
//	EMBER_WEBHOOK_SECRET=... webhook-receiver -listen 127.0.0.1:9099 [-run /path/to/handler]
//
// Answers: 200 done (also for a duplicate delivery, which was already
// handled), 401 bad or missing signature, 400 malformed body, 500 the
// handler failed (the sender retries).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/emberwatch/emberwatch/internal/hooks"
	"github.com/emberwatch/emberwatch/internal/wire"
)

func main() {
	fs := flag.NewFlagSet("webhook-receiver", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:9099", "listen `address`")
	secretSpec := fs.String("secret", "${EMBER_WEBHOOK_SECRET}", "shared secret: literal, ${ENV} or file:/path")
	oldSecret := fs.String("old-secret", "", "previous secret, accepted during a rotation")
	runCmd := fs.String("run", "", "optional `program` run with the evacuation JSON on stdin")
	fs.Parse(os.Args[1:])
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	var secrets [][]byte
	for _, s := range []string{*secretSpec, *oldSecret} {
		if s == "" {
			continue
		}
		b, err := hooks.ResolveSecret(s)
		if err != nil {
			fmt.Fprintf(os.Stderr, "webhook-receiver: -secret: %v\n", err)
			os.Exit(2)
		}
		secrets = append(secrets, b)
	}
	h := &Handler{Receiver: &hooks.Receiver{Secrets: secrets}, Log: log, Act: func(ctx context.Context, ev wire.Evacuation, body []byte) error {
		log.Info("evacuation", "id", ev.ID, "phase", ev.Phase, "domain", ev.Domain, "targets", ev.Targets, "dry_run", ev.DryRun)
		if *runCmd == "" {
			return nil
		}
		cmd := exec.CommandContext(ctx, *runCmd)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(body), os.Stderr, os.Stderr
		return cmd.Run()
	}}
	srv := &http.Server{Addr: *listen, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	log.Info("listening", "addr", *listen)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(os.Stderr, "webhook-receiver: %v\n", err)
		os.Exit(1)
	}
}

// Handler verifies and dispatches webhook deliveries.
type Handler struct {
	Receiver *hooks.Receiver
	Log      *slog.Logger
	// Act does the site's work; an error makes the sender retry.
	Act func(ctx context.Context, ev wire.Evacuation, body []byte) error
	// Now defaults to time.Now.
	Now func() time.Time
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	now := time.Now
	if h.Now != nil {
		now = h.Now
	}
	// Verify before parsing: nothing in an unverified body is trusted.
	if err := h.Receiver.Verify(r.Header, body, now()); err != nil {
		if errors.Is(err, hooks.ErrReplay) {
			h.Log.Info("duplicate delivery", "event", r.Header.Get(hooks.EventIDHeader))
			fmt.Fprintln(w, "duplicate: already handled")
			return
		}
		h.Log.Warn("refused delivery", "remote", r.RemoteAddr, "err", err)
		http.Error(w, "signature: "+err.Error(), http.StatusUnauthorized)
		return
	}
	var ev wire.Evacuation
	if err := json.Unmarshal(body, &ev); err != nil || ev.ID == "" || ev.Phase == "" {
		h.Receiver.Forget(body)
		http.Error(w, "malformed evacuation", http.StatusBadRequest)
		return
	}
	if err := h.Act(r.Context(), ev, body); err != nil {
		h.Receiver.Forget(body) // let the sender's retry through
		h.Log.Error("handler failed", "id", ev.ID, "phase", ev.Phase, "err", err)
		http.Error(w, "handler failed", http.StatusInternalServerError)
		return
	}
	fmt.Fprintln(w, "ok")
}
