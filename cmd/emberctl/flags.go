package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
)

// natsFlags are the -nats and -creds flags of the verbs that talk to NATS.
type natsFlags struct{ url, creds *string }

func addNATSFlags(fs *flag.FlagSet) natsFlags {
	def := os.Getenv("EMBER_NATS")
	if def == "" {
		def = nats.DefaultURL
	}
	return natsFlags{
		url:   fs.String("nats", def, "NATS server `URL`s, comma separated ($EMBER_NATS)"),
		creds: fs.String("creds", "", "NATS credentials `file`"),
	}
}

// connect opens the connection the flags describe, named for the verb.
func (f natsFlags) connect(name string, extra ...nats.Option) (*nats.Conn, error) {
	opts := append([]nats.Option{nats.Name(name)}, extra...)
	if *f.creds != "" {
		opts = append(opts, nats.UserCredentials(*f.creds))
	}
	nc, err := nats.Connect(*f.url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", *f.url, err)
	}
	return nc, nil
}

// parseWithID parses flags with one optional positional id, accepted
// before or after the flags ("ack ID -by x" and "ack -by x ID"). -h is
// not an error: done reports that the verb should stop quietly.
func parseWithID(fs *flag.FlagSet, args []string) (id string, done bool, err error) {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		id, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return "", true, nil
		}
		return "", false, err
	}
	if id == "" && fs.NArg() > 0 {
		id = fs.Arg(0)
	} else if fs.NArg() > 0 {
		return "", false, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return id, false, nil
}
