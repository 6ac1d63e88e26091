package main

// zombi cluster: an operator's view of a cluster's nodes and partitions,
// and the handoff of a dead node's partitions.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/zombihq/zombi/catalog"
	"github.com/zombihq/zombi/cluster"
)

const clusterUsage = `zombi cluster: the nodes of a cluster and their partitions (README, Running several nodes)

  zombi cluster status  [settings]              every node (alive or not) and every partition with its owner
  zombi cluster handoff --node ID [settings]    free the partitions of a dead node whose disk is lost

Settings are those of zombi serve, from the environment (ZOMBI_*) or flags:
the catalog (ZOMBI_CATALOG_URL=postgres://…, ZOMBI_CATALOG_NAMESPACE) and,
for handoff, the object store the tables live in (ZOMBI_S3_*).

A node that dies keeps its partitions: their unflushed events are only on
its disk, so they take no writes until it comes back with its data
directory. When that disk is lost, handoff frees them: each goes on, on
whichever node claims it next, after the last offset the dead node may have
handed out; the offsets it acked but never committed are recorded as
skipped (zombi.skipped.<p>) in that node's first commit. handoff refuses a
node whose lease is live.
`

func clusterCmd(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, clusterUsage)
		return 2
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet("zombi cluster "+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	node := ""
	switch cmd {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, clusterUsage)
		return 0
	case "status":
	case "handoff":
		fs.StringVar(&node, "node", "", "the dead node whose partitions are freed")
	default:
		fmt.Fprintf(stderr, "zombi cluster: unknown command %q\n\n%s", cmd, clusterUsage)
		return 2
	}
	cfg, err := loadConfig(fs, args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, clusterUsage)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "zombi cluster %s: %v\n", cmd, err)
		return 2
	}
	if !strings.HasPrefix(cfg.Cold.CatalogURL, "postgres://") && !strings.HasPrefix(cfg.Cold.CatalogURL, "postgresql://") {
		fmt.Fprintf(stderr, "zombi cluster %s: the cluster lives in a PostgreSQL catalog: set ZOMBI_CATALOG_URL=postgres://…\n", cmd)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	adm, err := cluster.OpenAdmin(ctx, cfg.Cold.CatalogURL)
	if err != nil {
		fmt.Fprintf(stderr, "zombi cluster %s: %v\n", cmd, err)
		return 1
	}
	defer adm.Close()
	if cmd == "status" {
		return clusterStatus(ctx, adm, stdout, stderr)
	}
	if node == "" {
		fmt.Fprintln(stderr, "zombi cluster handoff: --node is required (see zombi cluster status)")
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	copts, _, _, err := catalogOptions(&cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "zombi cluster handoff: %v\n", err)
		return 2
	}
	cat, err := catalog.Open(ctx, copts)
	if err != nil {
		fmt.Fprintf(stderr, "zombi cluster handoff: open the catalog: %v\n", err)
		return 1
	}
	defer cat.Close()
	marks := map[string]catalog.Watermarks{}
	freed, err := adm.Handoff(ctx, node, func(table string, p uint32) (uint64, uint64, error) {
		w, ok := marks[table]
		if !ok {
			names, err := cat.TableNames(ctx)
			if err != nil && !errors.Is(err, catalog.ErrNoSuchNamespace) {
				return 0, 0, err
			}
			w = catalog.Watermarks{}
			for _, n := range names {
				if n != table {
					continue
				}
				t, err := cat.Table(ctx, table)
				if err != nil {
					return 0, 0, err
				}
				if w, err = t.Watermarks(ctx); err != nil {
					return 0, 0, err
				}
			}
			marks[table] = w
		}
		m := w[p]
		if m.Owner != "" && m.Owner != node {
			// Committed by the node it took the partition from, not by
			// this one: it goes on from there.
			return m.Flushed, m.Flushed, nil
		}
		return m.Flushed, max(m.High, m.Flushed), nil
	})
	if err != nil {
		fmt.Fprintf(stderr, "zombi cluster handoff: %v\n", err)
		return 1
	}
	if len(freed) == 0 {
		fmt.Fprintf(stdout, "node %s owns no partition: nothing to hand off\n", node)
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tPARTITION\tCOMMITTED\tSKIPPED\t")
	for _, a := range freed {
		skipped := "-"
		if a.SkipTo > a.Flushed {
			skipped = fmt.Sprintf("%d-%d", a.Flushed+1, a.SkipTo)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t\n", a.Table, a.Partition, a.Flushed, skipped)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "freed %d partition(s) of node %s: the next node to write each goes on after the skipped offsets, "+
		"which node %s acked but never committed (they were only on its disk)\n", len(freed), node, node)
	return 0
}

func clusterStatus(ctx context.Context, adm *cluster.Admin, stdout, stderr io.Writer) int {
	ms, err := adm.Members(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "zombi cluster status: %v\n", err)
		return 1
	}
	as, err := adm.Assignments(ctx, "")
	if err != nil {
		fmt.Fprintf(stderr, "zombi cluster status: %v\n", err)
		return 1
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tADDRESS\tSTATE\tPARTITIONS\tLEASE EXPIRES\t")
	for _, m := range ms {
		state := "alive"
		switch {
		case m.Alive:
		case m.Stopped:
			state = "stopped"
		case m.Partitions > 0:
			state = "DEAD (its partitions take no writes)"
		default:
			state = "dead"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t\n", m.Node, m.Address, state, m.Partitions, m.ExpiresAt.UTC().Format(time.RFC3339))
	}
	tw.Flush()
	fmt.Fprintln(stdout)
	tw = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tPARTITION\tOWNER\tALIVE\tEPOCH\tTAKEN OVER FROM\t")
	for _, a := range as {
		owner, alive := a.Node, fmt.Sprint(a.Alive)
		if owner == "" {
			owner, alive = "(free)", "-"
		}
		from := "-"
		if a.PrevNode != "" {
			from = fmt.Sprintf("%s at %d", a.PrevNode, a.Flushed)
			if a.SkipTo > a.Flushed {
				from += fmt.Sprintf(" (skipping %d-%d)", a.Flushed+1, a.SkipTo)
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%s\t\n", a.Table, a.Partition, owner, alive, a.Epoch, from)
	}
	tw.Flush()
	return 0
}
