package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/apache/iceberg-go"
	icecat "github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"
)

// restServer is a minimal writable Iceberg REST catalog for tests: it
// serves config, namespaces and tables (create, load, commit) from a SQL
// catalog, answering a conflicting commit with 409 as REST catalogs do.
// It also counts the bearer tokens it sees.
func restServer(t *testing.T, backing icecat.Catalog, token string) *httptest.Server {
	writeJSON := func(w http.ResponseWriter, code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(v)
	}
	fail := func(w http.ResponseWriter, code int, typ string, err error) {
		writeJSON(w, code, map[string]any{"error": map[string]any{"message": err.Error(), "type": typ, "code": code}})
	}
	tableResp := func(w http.ResponseWriter, tbl *table.Table) {
		writeJSON(w, http.StatusOK, map[string]any{"metadata-location": tbl.MetadataLocation(), "metadata": tbl.Metadata(), "config": map[string]string{}})
	}
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if r.Header.Get("Authorization") != "Bearer "+token {
			fail(w, http.StatusUnauthorized, "NotAuthorizedException", errors.New("bad token"))
			return
		}
		parts := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, "/v1"), "/"), "/")
		switch {
		case len(parts) == 1 && parts[0] == "config":
			writeJSON(w, http.StatusOK, map[string]any{"defaults": map[string]string{}, "overrides": map[string]string{}})
		case len(parts) == 1 && parts[0] == "namespaces" && r.Method == http.MethodPost:
			var req struct {
				Namespace  []string           `json:"namespace"`
				Properties iceberg.Properties `json:"properties"`
			}
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
				fail(w, http.StatusBadRequest, "BadRequestException", err)
				return
			}
			if err := backing.CreateNamespace(ctx, req.Namespace, req.Properties); err != nil {
				if errors.Is(err, icecat.ErrNamespaceAlreadyExists) {
					fail(w, http.StatusConflict, "AlreadyExistsException", err)
					return
				}
				fail(w, http.StatusInternalServerError, "ServerError", err)
				return
			}
			writeJSON(w, http.StatusOK, map[string]any{"namespace": req.Namespace, "properties": map[string]string{}})
		case len(parts) == 3 && parts[0] == "namespaces" && parts[2] == "tables" && r.Method == http.MethodPost:
			var req struct {
				Name          string                `json:"name"`
				Schema        *iceberg.Schema       `json:"schema"`
				PartitionSpec iceberg.PartitionSpec `json:"partition-spec"`
				WriteOrder    table.SortOrder       `json:"write-order"`
				Props         iceberg.Properties    `json:"properties"`
			}
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
				fail(w, http.StatusBadRequest, "BadRequestException", err)
				return
			}
			tbl, err := backing.CreateTable(ctx, icecat.ToIdentifier(parts[1], req.Name), req.Schema,
				icecat.WithPartitionSpec(&req.PartitionSpec), icecat.WithSortOrder(req.WriteOrder), icecat.WithProperties(req.Props))
			if err != nil {
				fail(w, http.StatusConflict, "AlreadyExistsException", err)
				return
			}
			tableResp(w, tbl)
		case len(parts) == 4 && parts[0] == "namespaces" && parts[2] == "tables" && r.Method == http.MethodGet:
			tbl, err := backing.LoadTable(ctx, icecat.ToIdentifier(parts[1], parts[3]))
			if err != nil {
				fail(w, http.StatusNotFound, "NoSuchTableException", err)
				return
			}
			tableResp(w, tbl)
		case len(parts) == 4 && parts[0] == "namespaces" && parts[2] == "tables" && r.Method == http.MethodPost:
			var req struct {
				Requirements table.Requirements `json:"requirements"`
				Updates      table.Updates      `json:"updates"`
			}
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
				fail(w, http.StatusBadRequest, "BadRequestException", err)
				return
			}
			meta, loc, err := backing.CommitTable(ctx, icecat.ToIdentifier(parts[1], parts[3]), req.Requirements, req.Updates)
			if err != nil {
				fail(w, http.StatusConflict, "CommitFailedException", err)
				return
			}
			writeJSON(w, http.StatusOK, map[string]any{"metadata-location": loc, "metadata": meta})
		default:
			fail(w, http.StatusNotFound, "NotFoundException", errors.New(r.Method+" "+r.URL.Path))
		}
	}))
}

// The REST client path: namespace and table created through the REST
// catalog, commits with watermarks, a stale commit answered 409 and
// retried after a reload, watermarks read back.
func TestRESTCatalog(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	backing := openTest(t, dir) // a SQLite catalog with a file:// warehouse
	srv := restServer(t, backing.Iceberg(), "s3cr3t")
	defer srv.Close()

	open := func() *Catalog {
		c, err := Open(ctx, Options{URI: srv.URL, Token: "s3cr3t", RetryInitial: time.Millisecond, RetryMax: 10 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	c := open()
	if c.Kind() != "rest" {
		t.Fatalf("kind %s", c.Kind())
	}
	tbl, err := c.Table(ctx, "events")
	if err != nil {
		t.Fatal(err)
	}
	if f, ok := tbl.Iceberg().Schema().FindFieldByName("event_hour"); !ok || f.ID != FieldEventHour {
		t.Fatalf("schema through REST: %v", tbl.Iceberg().Schema())
	}
	stale, err := open().Table(ctx, "events")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tbl.Commit(ctx, []Range{{Partition: 0, From: 1, To: 10, High: 10}}, []DataFile{fakeFile(tbl, 0, 1, 10)}); err != nil {
		t.Fatal(err)
	}
	// The second client's view is stale: 409, reload, then its disjoint
	// partition commits on top.
	res, err := stale.Commit(ctx, []Range{{Partition: 1, From: 1, To: 5, High: 5}}, []DataFile{fakeFile(stale, 1, 1, 5)})
	if err != nil || res.Attempts < 2 {
		t.Fatalf("stale commit: %+v, %v", res, err)
	}
	w, err := tbl.Watermarks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if w[0].Flushed != 10 || w[1].Flushed != 5 {
		t.Fatalf("watermarks %v", w)
	}
	// A wrong token is refused (at open or at first use).
	bad, err := Open(ctx, Options{URI: srv.URL, Token: "wrong"})
	if err == nil {
		_, err = bad.Table(ctx, "events")
		bad.Close()
	}
	if err == nil {
		t.Fatal("wrong token accepted")
	}
}
