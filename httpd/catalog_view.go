package httpd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/zombihq/zombi/catalog"
	"github.com/zombihq/zombi/httpd/param"
)

// The read-only Iceberg REST catalog view under /v1 (the Iceberg REST
// catalog OpenAPI spec, the subset that lets engines discover and load
// tables):
//
//	GET  /v1/config
//	GET  /v1/namespaces[?parent=]
//	GET  /v1/namespaces/{ns}          HEAD: 204 or 404
//	GET  /v1/namespaces/{ns}/tables
//	GET  /v1/namespaces/{ns}/tables/{t}   LoadTableResult; HEAD: 204 or 404
//
// Only the namespace of Zombi's tables is shown, even when the catalog
// behind it is shared. Errors have the spec's body
// {"error":{"message","type","code"}}. Credentials are never served: the
// config carries the object store's endpoint and region, readers bring
// their own keys.

// catalogViewEndpoints are advertised in /v1/config, so clients know that
// nothing else (creating, committing, scan planning) is served.
var catalogViewEndpoints = []string{
	"GET /v1/{prefix}/namespaces",
	"GET /v1/{prefix}/namespaces/{namespace}",
	"HEAD /v1/{prefix}/namespaces/{namespace}",
	"GET /v1/{prefix}/namespaces/{namespace}/tables",
	"GET /v1/{prefix}/namespaces/{namespace}/tables/{table}",
	"HEAD /v1/{prefix}/namespaces/{namespace}/tables/{table}",
}

// catalogViewTimeout bounds one catalog request.
const catalogViewTimeout = 30 * time.Second

// namespaceSep separates the levels of a namespace in a REST path (the
// spec's unit separator, %1F).
const namespaceSep = "\x1f"

// NewCatalogView returns the handler of the read-only Iceberg REST
// catalog view over cat, for Config.Catalog. The server routes GET and
// HEAD requests under /v1 to it (after authentication, at the read role).
func NewCatalogView(cat *catalog.Catalog) func(*fasthttp.RequestCtx) {
	v := &catalogView{cat: cat, ns: cat.NamespaceIdent()}
	return v.serve
}

type catalogView struct {
	cat *catalog.Catalog
	ns  []string
}

func (v *catalogView) serve(ctx *fasthttp.RequestCtx) {
	path := string(bytes.TrimSuffix(ctx.Path(), []byte("/")))
	rest, ok := strings.CutPrefix(path, "/v1/")
	if !ok {
		icebergError(ctx, fasthttp.StatusNotFound, "NotFoundException", "No route for "+path)
		return
	}
	parts := strings.Split(rest, "/")
	c, cancel := context.WithTimeout(context.Background(), catalogViewTimeout)
	defer cancel()
	switch {
	case len(parts) == 1 && parts[0] == "config":
		v.config(ctx)
	case len(parts) == 1 && parts[0] == "namespaces":
		v.listNamespaces(ctx, c)
	case parts[0] != "namespaces":
		icebergError(ctx, fasthttp.StatusNotFound, "NotFoundException", "No route for "+path+" (a read-only catalog view)")
	case !v.isNamespace(parts[1]):
		icebergError(ctx, fasthttp.StatusNotFound, "NoSuchNamespaceException", "Namespace does not exist: "+printable(parts[1]))
	case len(parts) == 2:
		v.namespace(ctx, c)
	case len(parts) == 3 && parts[2] == "tables":
		v.listTables(ctx, c)
	case len(parts) == 4 && parts[2] == "tables":
		v.loadTable(ctx, c, parts[3])
	default:
		icebergError(ctx, fasthttp.StatusNotFound, "NotFoundException", "No route for "+path+" (a read-only catalog view)")
	}
}

// isNamespace reports whether a path segment (decoded) names Zombi's
// namespace: levels separated by %1F, or by "." as some clients send.
func (v *catalogView) isNamespace(seg string) bool {
	want := strings.Join(v.ns, namespaceSep)
	return seg == want || seg == strings.Join(v.ns, ".")
}

func (v *catalogView) config(ctx *fasthttp.RequestCtx) {
	writeIcebergJSON(ctx, fasthttp.StatusOK, map[string]any{
		"defaults":  v.cat.ReaderProps(),
		"overrides": map[string]string{},
		"endpoints": catalogViewEndpoints,
	})
}

func (v *catalogView) listNamespaces(ctx *fasthttp.RequestCtx, c context.Context) {
	out := [][]string{}
	if parent := ctx.QueryArgs().Peek("parent"); len(parent) == 0 {
		_, err := v.cat.NamespaceProperties(c)
		switch {
		case err == nil:
			out = append(out, v.ns)
		case !catalog.IsNotFound(err):
			catalogFailure(ctx, err)
			return
		}
	}
	// Zombi's namespace has no children; a parent lists nothing.
	writeIcebergJSON(ctx, fasthttp.StatusOK, map[string]any{"namespaces": out})
}

func (v *catalogView) namespace(ctx *fasthttp.RequestCtx, c context.Context) {
	props, err := v.cat.NamespaceProperties(c)
	if err != nil {
		catalogFailure(ctx, err)
		return
	}
	if ctx.IsHead() {
		ctx.SetStatusCode(fasthttp.StatusNoContent)
		return
	}
	writeIcebergJSON(ctx, fasthttp.StatusOK, map[string]any{"namespace": v.ns, "properties": props})
}

type tableIdent struct {
	Namespace []string `json:"namespace"`
	Name      string   `json:"name"`
}

func (v *catalogView) listTables(ctx *fasthttp.RequestCtx, c context.Context) {
	names, err := v.cat.TableNames(c)
	if err != nil {
		catalogFailure(ctx, err)
		return
	}
	ids := make([]tableIdent, 0, len(names))
	for _, n := range names {
		ids = append(ids, tableIdent{Namespace: v.ns, Name: n})
	}
	writeIcebergJSON(ctx, fasthttp.StatusOK, map[string]any{"identifiers": ids})
}

func (v *catalogView) loadTable(ctx *fasthttp.RequestCtx, c context.Context, name string) {
	if !param.ValidTableName([]byte(name)) {
		icebergError(ctx, fasthttp.StatusNotFound, "NoSuchTableException", "Table does not exist: "+printable(name))
		return
	}
	tv, err := v.cat.LoadView(c, name)
	if err != nil {
		catalogFailure(ctx, err)
		return
	}
	if ctx.IsHead() {
		ctx.SetStatusCode(fasthttp.StatusNoContent)
		return
	}
	writeIcebergJSON(ctx, fasthttp.StatusOK, struct {
		MetadataLocation string            `json:"metadata-location"`
		Metadata         json.RawMessage   `json:"metadata"`
		Config           map[string]string `json:"config"`
	}{tv.MetadataLocation, tv.Metadata, v.cat.ReaderProps()})
}

// catalogFailure answers a catalog error: 404 for a missing namespace or
// table, 503 otherwise (the catalog behind the view is unreachable).
func catalogFailure(ctx *fasthttp.RequestCtx, err error) {
	switch {
	case errors.Is(err, catalog.ErrNoSuchTable):
		icebergError(ctx, fasthttp.StatusNotFound, "NoSuchTableException", err.Error())
	case errors.Is(err, catalog.ErrNoSuchNamespace):
		icebergError(ctx, fasthttp.StatusNotFound, "NoSuchNamespaceException", err.Error())
	default:
		icebergError(ctx, fasthttp.StatusServiceUnavailable, "ServiceUnavailableException", err.Error())
	}
}

// icebergError answers with the REST spec's ErrorModel.
func icebergError(ctx *fasthttp.RequestCtx, status int, typ, msg string) {
	writeIcebergJSON(ctx, status, map[string]any{"error": map[string]any{"message": msg, "type": typ, "code": status}})
}

func writeIcebergJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = fasthttp.StatusInternalServerError
		b = []byte(`{"error":{"message":"cannot encode the response","type":"InternalServerError","code":500}}`)
	}
	writeJSON(ctx, status, b)
}

// printable bounds and sanitises a client-supplied name for a message.
func printable(s string) string {
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}
