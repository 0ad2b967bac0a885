package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/emberwatch/emberwatch/collector"
	"github.com/emberwatch/emberwatch/internal/wire"
)

// cmdAck acknowledges a latched alert through the collector, which records
// who and when and publishes the ack.
func cmdAck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ack", flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("collector", collectorURL(), "collector base `URL` ($EMBER_COLLECTOR)")
	by := fs.String("by", "", "who acknowledges (required)")
	note := fs.String("note", "", "a note kept with the ack")
	token := fs.String("token", os.Getenv("EMBER_TOKEN"), "the collector's http.token, if it has one ($EMBER_TOKEN)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: emberctl ack ALERT-ID -by NAME [-note TEXT] [-collector URL] [-token TOKEN]")
		fs.PrintDefaults()
	}
	// Accept the id before or after the flags.
	id, done, err := parseWithID(fs, args)
	if done || err != nil {
		return err
	}
	if id == "" {
		fs.Usage()
		return errors.New("missing ALERT-ID")
	}
	if strings.TrimSpace(*by) == "" {
		fs.Usage()
		return errors.New("-by NAME is required: an ack records who made it")
	}
	body, _ := json.Marshal(collector.AckRequest{ID: id, By: *by, Note: *note})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(*base, "/")+"/api/v1/ack", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if *token != "" {
		req.Header.Set("Authorization", "Bearer "+*token)
	}
	var a wire.Alert
	if err := apiDo(req, &a); err != nil {
		return err
	}
	if a.Ack == nil {
		return fmt.Errorf("collector answered without an ack for %s", id)
	}
	fmt.Fprintf(stdout, "acked %s (%s %s %s/%s) by %s at %s\n", a.ID, a.Stage, a.Category, a.Agent, a.Device,
		a.Ack.By, a.Ack.Time.Format("2006-01-02T15:04:05Z07:00"))
	return nil
}
