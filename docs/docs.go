// Package docs holds the documents the server serves itself: the OpenAPI
// description of the HTTP API (GET /openapi.yaml). The files are plain
// documentation first; this package only embeds them into the binary.
package docs

import _ "embed"

// OpenAPI is docs/openapi.yaml: OpenAPI 3 for every route of httpd (a test
// in httpd keeps the two in step).
//
//go:embed openapi.yaml
var OpenAPI []byte
