package httpd

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"

	"github.com/valyala/fasthttp"
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
// Tokens are kept only as SHA-256 digests and a presented token is hashed
// and compared with every known digest in constant time, so neither the
// time taken nor the work done depends on how much of a token matched or
// on its length. Tokens are never logged and never appear in a response.

// Role is what a bearer token may do; a higher role includes the lower.
type Role uint8

const (
	// RoleNone is needed by the health routes: no token at all.
	RoleNone Role = iota
	// RoleMetrics may scrape /metrics and /stats.
	RoleMetrics
	// RoleRead may also read tables, watermarks, metadata, the Iceberg
	// catalog view, and read and commit consumer offsets.
	RoleRead
	// RoleWrite may also append events.
	RoleWrite
	// RoleAdmin may also force flushes and compactions.
	RoleAdmin
)

var roleNames = [...]string{"none", "metrics", "read", "write", "admin"}

func (r Role) String() string {
	if int(r) < len(roleNames) {
		return roleNames[r]
	}
	return fmt.Sprintf("Role(%d)", int(r))
}

// ParseRole parses "metrics", "read", "write" or "admin".
func ParseRole(s string) (Role, error) {
	for i, n := range roleNames[RoleMetrics:] {
		if s == n {
			return RoleMetrics + Role(i), nil
		}
	}
	return RoleNone, fmt.Errorf("unknown role %q: want metrics, read, write or admin", s)
}

// Token is one bearer token and its role.
type Token struct {
	Secret string
	Role   Role
}

// Bounds of a token's length.
const (
	MinTokenLen = 16
	MaxTokenLen = 1024
)

// ParseTokens parses the ZOMBI_AUTH_TOKENS syntax: entries "token:role"
// separated by commas or newlines; spaces around an entry, empty entries
// and lines starting with '#' are ignored. Error messages name an entry by
// its position, never by its token.
func ParseTokens(spec string) ([]Token, error) {
	var toks []Token
	var errs []error
	n := 0
	for line := range strings.Lines(spec) {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		for entry := range strings.SplitSeq(line, ",") {
			entry = strings.TrimSpace(entry)
			if entry == "" {
				continue
			}
			n++
			i := strings.LastIndexByte(entry, ':')
			if i < 0 {
				errs = append(errs, fmt.Errorf("token entry %d: want token:role", n))
				continue
			}
			secret, roleName := strings.TrimSpace(entry[:i]), strings.TrimSpace(entry[i+1:])
			role, err := ParseRole(roleName)
			if err != nil {
				errs = append(errs, fmt.Errorf("token entry %d: %w", n, err))
				continue
			}
			toks = append(toks, Token{Secret: secret, Role: role})
		}
	}
	if err := validateTokens(toks); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 && len(toks) == 0 {
		errs = append(errs, errors.New("no token given"))
	}
	return toks, errors.Join(errs...)
}

// validateTokens checks secrets and roles; it names tokens by position.
func validateTokens(toks []Token) error {
	var errs []error
	seen := make(map[[sha256.Size]byte]int, len(toks))
	for i, t := range toks {
		if err := checkSecret(t.Secret); err != nil {
			errs = append(errs, fmt.Errorf("token entry %d: %w", i+1, err))
			continue
		}
		if t.Role < RoleMetrics || t.Role > RoleAdmin {
			errs = append(errs, fmt.Errorf("token entry %d: invalid role %d", i+1, t.Role))
		}
		h := sha256.Sum256([]byte(t.Secret))
		if j, ok := seen[h]; ok {
			errs = append(errs, fmt.Errorf("token entry %d: same token as entry %d", i+1, j))
		}
		seen[h] = i + 1
	}
	return errors.Join(errs...)
}

// checkSecret allows RFC 6750's b64token characters, MinTokenLen to
// MaxTokenLen of them.
func checkSecret(s string) error {
	if len(s) < MinTokenLen || len(s) > MaxTokenLen {
		return fmt.Errorf("a token must be %d to %d characters long (e.g. openssl rand -hex 32)", MinTokenLen, MaxTokenLen)
	}
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return errors.New("a token may only contain A-Z a-z 0-9 - . _ ~ + / and trailing =")
		}
	}
	return nil
}

func isTokenChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/' || c == '='
}

// authenticator knows the tokens by their SHA-256 digests.
type authenticator struct {
	digests [][sha256.Size]byte
	roles   []Role
}

func newAuthenticator(toks []Token) (*authenticator, error) {
	if len(toks) == 0 {
		return nil, nil
	}
	if err := validateTokens(toks); err != nil {
		return nil, fmt.Errorf("httpd: %w", err)
	}
	a := &authenticator{}
	for _, t := range toks {
		a.digests = append(a.digests, sha256.Sum256([]byte(t.Secret)))
		a.roles = append(a.roles, t.Role)
	}
	return a, nil
}

// role returns the role of the bearer token in an Authorization header
// value; ok is false when there is none or it is unknown. Every known
// digest is compared, in constant time, whatever the token.
func (a *authenticator) role(authz []byte) (Role, bool) {
	tok, ok := bearerToken(authz)
	if !ok {
		return RoleNone, false
	}
	h := sha256.Sum256(tok)
	found, role := 0, 0
	for i := range a.digests {
		eq := subtle.ConstantTimeCompare(h[:], a.digests[i][:])
		found |= eq
		role = subtle.ConstantTimeSelect(eq, int(a.roles[i]), role)
	}
	return Role(role), found == 1
}

// bearerToken extracts the token of "Bearer <token>" (scheme
// case-insensitive, RFC 7235).
func bearerToken(authz []byte) ([]byte, bool) {
	const scheme = "bearer "
	if len(authz) <= len(scheme) || !bytes.EqualFold(authz[:len(scheme)], []byte(scheme)) {
		return nil, false
	}
	tok := bytes.TrimSpace(authz[len(scheme):])
	return tok, len(tok) > 0
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
	have, ok := s.auth.role(authz)
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
