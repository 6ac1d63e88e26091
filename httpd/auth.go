package httpd

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/zombihq/zombi/httpd/param"
)

// # Authentication
//
// With Config.Tokens set, every route except /health, /health/live and
// /health/ready needs "Authorization: Bearer <token>". A missing or unknown
// token answers 401 UNAUTHORIZED with WWW-Authenticate: Bearer; a known
// token whose role is too low answers 403 FORBIDDEN.
//
// Roles are ordered; each includes every role below it:
//
//	metrics  GET /stats, /metrics (and any unknown route, which is a 404)
//	read     GET /tables/{t}[/watermark|/metadata], consumer offsets
//	         (commit and read: committing is part of consuming), /v1/…
//	write    POST /tables/{t}, POST /tables/{t}/bulk
//	admin    POST /tables/{t}/flush, POST /tables/{t}/compact, POST /tables/{t}/maintenance,
//	         POST /tables/{t}/skip-gap
//
// Tokens are kept only as SHA-256 digests and a presented token is
// compared with every known digest in constant time (param.Authenticator).
// Tokens are never logged and never appear in a response.
//
// The roles, the tokens and their parsers are package param's, which links
// only the standard library so that its fuzz targets run fast; the aliases
// below keep them part of httpd's API (Config.Tokens).

// Role is what a bearer token may do; a higher role includes the lower.
type Role = param.Role

// The roles, lowest first.
const (
	RoleNone    = param.RoleNone
	RoleMetrics = param.RoleMetrics
	RoleRead    = param.RoleRead
	RoleWrite   = param.RoleWrite
	RoleAdmin   = param.RoleAdmin
)

// Token is one bearer token and its role.
type Token = param.Token

// Bounds of a token's length.
const (
	MinTokenLen = param.MinTokenLen
	MaxTokenLen = param.MaxTokenLen
)

// ParseTokens parses the ZOMBI_AUTH_TOKENS syntax: entries "token:role"
// separated by commas or newlines (see param.ParseTokens).
func ParseTokens(spec string) ([]Token, error) { return param.ParseTokens(spec) }

func newAuthenticator(toks []Token) (*param.Authenticator, error) {
	a, err := param.NewAuthenticator(toks)
	if err != nil {
		return nil, fmt.Errorf("httpd: %w", err)
	}
	return a, nil
}

// requiredRole is the role a request needs, from its method and
// normalised path.
func requiredRole(post bool, path []byte) Role {
	switch {
	case bytes.HasPrefix(path, []byte("/tables/")):
		_, action, found := bytes.Cut(path[len("/tables/"):], []byte("/"))
		switch {
		case !found:
			if post {
				return RoleWrite
			}
			return RoleRead
		case string(action) == "bulk":
			return RoleWrite
		case string(action) == "flush" || string(action) == "compact" || string(action) == "maintenance" || string(action) == "skip-gap":
			return RoleAdmin
		}
		return RoleRead
	case string(path) == "/health" || bytes.HasPrefix(path, []byte("/health/")):
		return RoleNone
	case bytes.HasPrefix(path, []byte("/consumers/")), string(path) == "/v1", bytes.HasPrefix(path, []byte("/v1/")):
		return RoleRead
	}
	return RoleMetrics // /stats, /metrics, and unknown routes (404 once authenticated)
}

// authVerdict returns "" when the bearer token in authz has the role the
// route needs, else the refusal: "401 missing", "401 invalid" or
// "403 <have> <need>".
func (s *Server) authVerdict(post bool, path, authz []byte) string {
	need := requiredRole(post, path)
	if need == RoleNone {
		return ""
	}
	have, ok := s.auth.Role(authz)
	switch {
	case !ok && len(authz) == 0:
		return "401 missing"
	case !ok:
		return "401 invalid"
	case have < need:
		return "403 " + have.String() + " " + need.String()
	}
	return ""
}

// authorize checks the request's bearer token against the role its route
// needs; when it falls short it answers 401 or 403 and returns false.
func (s *Server) authorize(ctx *fasthttp.RequestCtx, path []byte) bool {
	v := s.authVerdict(ctx.IsPost(), path, ctx.Request.Header.Peek(fasthttp.HeaderAuthorization))
	if v == "" {
		return true
	}
	s.authRefused(ctx, v)
	return false
}

// authRefusal is headerReceived's verdict on a request with a body, taken
// before any of the body is read; "" lets it through.
func (s *Server) authRefusal(h *fasthttp.RequestHeader) string {
	u := fasthttp.AcquireURI()
	defer fasthttp.ReleaseURI(u)
	if err := u.Parse(nil, h.RequestURI()); err != nil {
		return "" // fasthttp answers 400 itself
	}
	return s.authVerdict(h.IsPost(), u.Path(), h.Peek(fasthttp.HeaderAuthorization))
}

// authRefused answers a verdict of authVerdict.
func (s *Server) authRefused(ctx *fasthttp.RequestCtx, verdict string) {
	if !ctx.IsGet() && !ctx.IsHead() {
		ctx.SetConnectionClose() // a body may still be on the wire, unread
	}
	switch verdict {
	case "401 missing":
		ctx.Response.Header.Set(fasthttp.HeaderWWWAuthenticate, `Bearer realm="zombi"`)
		s.writeError(ctx, fasthttp.StatusUnauthorized, codeUnauthorized, "Missing bearer token (Authorization: Bearer <token>)")
	case "401 invalid":
		ctx.Response.Header.Set(fasthttp.HeaderWWWAuthenticate, `Bearer realm="zombi", error="invalid_token"`)
		s.writeError(ctx, fasthttp.StatusUnauthorized, codeUnauthorized, "Invalid bearer token")
	default: // "403 <have> <need>"
		f := strings.Fields(verdict)
		have, need := "?", "?"
		if len(f) == 3 {
			have, need = f[1], f[2]
		}
		s.writeError(ctx, fasthttp.StatusForbidden, codeForbidden,
			"The token's role ("+have+") cannot "+string(ctx.Method())+" "+string(ctx.Path())+" (needs "+need+")")
	}
}
