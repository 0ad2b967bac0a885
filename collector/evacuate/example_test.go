package evacuate_test

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/nats-io/nats.go"
	"gopkg.in/yaml.v3"

	"github.com/emberwatch/emberwatch/collector/evacuate"
)

// How a collector wires the engine: parse its `evacuation:` section, run
// the engine next to the collector, mount the HTTP handler and write the
// audit records where it writes events.
func Example() {
	var section yaml.Node // the collector config's `evacuation:` node
	fc, err := evacuate.ParseConfig("collector.yaml", &section, nil)
	if err != nil || fc == nil {
		return // a config error, or evacuation not configured
	}
	nc, _ := nats.Connect(nats.DefaultURL)
	log := slog.New(slog.DiscardHandler)
	e, err := fc.NewEngine("pangyo-a", "col-1", nc, log, func(r evacuate.AuditRecord) {
		// write r to InfluxDB (ember_evac_audit) here
	})
	if err != nil {
		return
	}
	mux := http.NewServeMux()
	mux.Handle("/api/v1/evacuations/", e.Handler()) // {id}, approve, abort, complete
	go e.Run(context.Background())
}
