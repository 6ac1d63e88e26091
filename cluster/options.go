package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"
)

// Options configure a node of the cluster. A zero field takes its default.
type Options struct {
	// DSN is the postgres:// URL of the database: the catalog's. Required.
	DSN string
	// Node is this node's id: 1–64 letters, digits, '.', '_' or '-'.
	// Required; it must stay the same across restarts of one data
	// directory, since ownership follows it.
	Node string
	// Address is the host:port this node advertises, returned to clients
	// sent to it. Required.
	Address string
	// Partitions is how many partitions of a table this node writes for
	// writes that name none (Own). Default 1.
	Partitions int
	// LeaseTTL is how long a renewal keeps the node alive; it renews every
	// LeaseTTL/3. Default 15s; at least 30ms.
	LeaseTTL time.Duration
	// Logger receives ownership changes and lease trouble. Default
	// slog.Default().
	Logger *slog.Logger
}

// Defaults.
const (
	DefaultPartitions = 1                // Options.Partitions
	DefaultLeaseTTL   = 15 * time.Second // Options.LeaseTTL
	minLeaseTTL       = 30 * time.Millisecond
	maxNodeLen        = 64
)

// ensureDefaults fills in the zero fields.
func (o *Options) ensureDefaults() {
	if o.Partitions == 0 {
		o.Partitions = DefaultPartitions
	}
	if o.LeaseTTL == 0 {
		o.LeaseTTL = DefaultLeaseTTL
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// validate reports every problem with o at once.
func (o *Options) validate() error {
	var errs []error
	if o.DSN == "" {
		errs = append(errs, errors.New("cluster: no DSN: the postgres:// URL of the catalog's database is required"))
	}
	if err := checkNode(o.Node); err != nil {
		errs = append(errs, err)
	}
	if o.Address == "" {
		errs = append(errs, errors.New("cluster: no address: the node's advertised host:port is required"))
	} else if host, port, err := net.SplitHostPort(o.Address); err != nil || host == "" || port == "" {
		errs = append(errs, fmt.Errorf("cluster: address %q: want host:port", o.Address))
	}
	if o.Partitions < 0 {
		errs = append(errs, fmt.Errorf("cluster: %d partitions: want at least 1", o.Partitions))
	}
	if o.LeaseTTL < minLeaseTTL {
		errs = append(errs, fmt.Errorf("cluster: lease TTL %v: want at least %v", o.LeaseTTL, minLeaseTTL))
	}
	return errors.Join(errs...)
}

// checkNode reports whether id is a valid node id.
func checkNode(id string) error {
	if id == "" {
		return errors.New("cluster: no node id: every node needs one (1-64 letters, digits, '.', '_' or '-')")
	}
	if len(id) > maxNodeLen {
		return fmt.Errorf("cluster: node id %q: longer than %d characters", id, maxNodeLen)
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("cluster: node id %q: %q not allowed (letters, digits, '.', '_' or '-')", id, r)
		}
	}
	return nil
}
