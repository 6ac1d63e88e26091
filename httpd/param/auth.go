package param

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
)

// Tokens are kept only as SHA-256 digests and a presented token is hashed
// and compared with every known digest in constant time, so neither the
// time taken nor the work done depends on how much of a token matched or
// on its length. Tokens are never logged and never appear in an error.
// Which role a route needs is httpd's (auth.go).

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
	if err := ValidateTokens(toks); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 && len(toks) == 0 {
		errs = append(errs, errors.New("no token given"))
	}
	return toks, errors.Join(errs...)
}

// ValidateTokens checks secrets and roles; it names tokens by position.
func ValidateTokens(toks []Token) error {
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

// Authenticator knows the tokens by their SHA-256 digests.
type Authenticator struct {
	digests [][sha256.Size]byte
	roles   []Role
}

// NewAuthenticator validates toks and returns their authenticator; nil
// when there are none (authentication off).
func NewAuthenticator(toks []Token) (*Authenticator, error) {
	if len(toks) == 0 {
		return nil, nil
	}
	if err := ValidateTokens(toks); err != nil {
		return nil, err
	}
	a := &Authenticator{}
	for _, t := range toks {
		a.digests = append(a.digests, sha256.Sum256([]byte(t.Secret)))
		a.roles = append(a.roles, t.Role)
	}
	return a, nil
}

// Role returns the role of the bearer token in an Authorization header
// value; ok is false when there is none or it is unknown. Every known
// digest is compared, in constant time, whatever the token.
func (a *Authenticator) Role(authz []byte) (Role, bool) {
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
