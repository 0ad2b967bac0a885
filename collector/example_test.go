package collector_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"time"

	"github.com/emberwatch/emberwatch/collector"
)

// Running a collector in-process, as the demo does.
func ExampleNew() {
	cfg, err := collector.ParseConfig("collector.yaml", []byte(`
site: pangyo-a
nats: {servers: ["nats://127.0.0.1:4222"]}
influx: {url: "http://127.0.0.1:8086", database: telemetry, create_database: true}
http: {listen: "127.0.0.1:0"}
`))
	if err != nil {
		fmt.Println(err) // file:line: key: what is wrong
		return
	}
	c, err := collector.New(cfg, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("status page: http://" + c.HTTPAddr() + "/")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := c.Run(ctx); err != nil { // until ctx ends; flushes what it holds
		fmt.Println(err)
	}
}

// A NOC receiver checks the Ember-Signature header of a webhook.
func ExampleVerifySignature() {
	secret := []byte("from collector.yaml noc.webhooks[].secret")
	body := []byte(`{"id":"01JD3Q4W2S5T7X9Y0Z1A2B3C4D","stage":"critical"}`)
	sent := time.Unix(1763784000, 0)
	header := collector.Sign(secret, sent, body) // what the collector sends
	fmt.Println(header[:13])
	fmt.Println(collector.VerifySignature(secret, header, body, sent.Add(30*time.Second), 5*time.Minute))
	fmt.Println(collector.VerifySignature(secret, header, []byte(`{"forged":true}`), sent, 5*time.Minute))
	// Output:
	// t=1763784000,
	// <nil>
	// ember signature: mismatch
}

// A config error names the file, the line and the key.
func ExampleParseConfig() {
	_, err := collector.ParseConfig("collector.yaml", []byte("site: pangyo-a\nnats: {servers: [\"nats://h:4222\"]}\nheartbeat_timeout: soon\n"))
	fmt.Println(err)
	// Output:
	// collector.yaml:3: heartbeat_timeout: want a positive duration like 15s or 2m, got "soon"
}
