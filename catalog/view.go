package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	icecat "github.com/apache/iceberg-go/catalog"
)

// Read-only access for the Iceberg REST catalog view that httpd serves
// under /v1, so that httpd needs no iceberg-go import.

var (
	// ErrNoSuchNamespace is iceberg-go's: the namespace does not exist.
	ErrNoSuchNamespace = icecat.ErrNoSuchNamespace
	// ErrNoSuchTable is iceberg-go's: the table does not exist.
	ErrNoSuchTable = icecat.ErrNoSuchTable
)

// NamespaceIdent returns the namespace of the event tables as an Iceberg
// identifier: its name split on ".".
func (c *Catalog) NamespaceIdent() []string {
	return icecat.ToIdentifier(c.opts.Namespace)
}

// NamespaceProperties returns the properties of the event tables'
// namespace, or ErrNoSuchNamespace before the first table exists.
func (c *Catalog) NamespaceProperties(ctx context.Context) (map[string]string, error) {
	props, err := c.cat.LoadNamespaceProperties(ctx, c.NamespaceIdent())
	if err != nil {
		return nil, fmt.Errorf("catalog: namespace %s: %w", c.opts.Namespace, err)
	}
	out := make(map[string]string, len(props))
	for k, v := range props {
		out[k] = v
	}
	return out, nil
}

// TableNames lists the tables of the namespace, sorted.
func (c *Catalog) TableNames(ctx context.Context) ([]string, error) {
	var names []string
	for ident, err := range c.cat.ListTables(ctx, c.NamespaceIdent()) {
		if err != nil {
			return nil, fmt.Errorf("catalog: list tables of %s: %w", c.opts.Namespace, err)
		}
		if len(ident) > 0 {
			names = append(names, ident[len(ident)-1])
		}
	}
	slices.Sort(names)
	return names, nil
}

// TableView is a table as the REST catalog view serves it.
type TableView struct {
	MetadataLocation string
	// Metadata is the table metadata document (the JSON of the metadata
	// file).
	Metadata json.RawMessage
}

// Locations returns the current metadata location and the table location
// of table name, loaded from the catalog without creating the table:
// ErrNoSuchTable when it does not exist.
func (c *Catalog) Locations(ctx context.Context, name string) (metadataLocation, tableLocation string, err error) {
	tbl, err := c.cat.LoadTable(ctx, append(c.NamespaceIdent(), name))
	if err != nil {
		return "", "", fmt.Errorf("catalog: load table %s: %w", name, err)
	}
	return tbl.MetadataLocation(), tbl.Location(), nil
}

// LoadView loads table name from the catalog (fresh, not the committer's
// cached copy) without creating it: ErrNoSuchTable when it does not
// exist.
func (c *Catalog) LoadView(ctx context.Context, name string) (TableView, error) {
	ident := append(c.NamespaceIdent(), name)
	tbl, err := c.cat.LoadTable(ctx, ident)
	if err != nil {
		return TableView{}, fmt.Errorf("catalog: load table %s: %w", name, err)
	}
	md, err := json.Marshal(tbl.Metadata())
	if err != nil {
		return TableView{}, fmt.Errorf("catalog: table %s metadata: %w", name, err)
	}
	return TableView{MetadataLocation: tbl.MetadataLocation(), Metadata: md}, nil
}

// ReaderProps returns the FileIO properties a reader needs to open the
// tables' files (s3.endpoint, s3.region, path-style access), without
// credentials: readers bring their own. Besides iceberg-go's names it
// carries the Java FileIO's (client.region, s3.path-style-access), so
// Spark and Trino pick them up from the REST catalog's config too.
func (c *Catalog) ReaderProps() map[string]string {
	out := map[string]string{}
	for k, v := range c.opts.IOProps {
		if isSecretProp(k) {
			continue
		}
		out[k] = v
	}
	if r := out["s3.region"]; r != "" {
		out["client.region"] = r
	}
	if out["s3.force-virtual-addressing"] == "false" {
		out["s3.path-style-access"] = "true"
	}
	return out
}

func isSecretProp(k string) bool {
	k = strings.ToLower(k)
	for _, s := range []string{"secret", "access-key", "session-token", "token", "password", "credential"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

// IsNotFound reports whether err says a namespace or table does not exist.
func IsNotFound(err error) bool {
	return errors.Is(err, ErrNoSuchNamespace) || errors.Is(err, ErrNoSuchTable)
}
