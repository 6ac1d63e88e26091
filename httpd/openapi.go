package httpd

import (
	"github.com/valyala/fasthttp"

	"github.com/zombihq/zombi/docs"
)

// openAPI serves GET /openapi.yaml: the OpenAPI 3 description of every
// route (docs/openapi.yaml, embedded in the binary).
func (s *Server) openAPI(ctx *fasthttp.RequestCtx) {
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/yaml; charset=utf-8")
	ctx.SetBody(docs.OpenAPI)
}
