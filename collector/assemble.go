package collector

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go"
	"gopkg.in/yaml.v3"

	"github.com/emberwatch/emberwatch/collector/evacuate"
)

// Assemble makes the collector and, when collector.yaml has an evacuation
// section, the evacuation engine inside it: the engine starts once NATS is
// connected, serves its API under /api/v1/evacuations and is restarted with
// backoff if it fails.
func Assemble(cfg *Config, log *slog.Logger) (*Collector, error) {
	var evac *evacuate.FileConfig
	if n := &cfg.Evacuation; n.Kind != 0 && !(n.Kind == yaml.MappingNode && len(n.Content) == 0) {
		var err error
		if evac, err = evacuate.ParseConfig(cfg.File, n, nil); err != nil {
			return nil, err
		}
	}
	c, err := New(cfg, log)
	if err != nil {
		return nil, err
	}
	if evac == nil {
		log.Info("no evacuation section: this collector does not evacuate")
		return c, nil
	}
	c.AddPart("evacuation", func(ctx context.Context, nc *nats.Conn) error {
		eng, err := evac.NewEngine(cfg.Site, cfg.CollectorID, nc, log.With("part", "evacuation"), nil)
		if err != nil {
			return fmt.Errorf("evacuation engine: %w", err)
		}
		c.SetEvacuations(eng)
		c.SetEvacuationHandler(eng.Handler())
		return eng.Run(ctx)
	})
	return c, nil
}
