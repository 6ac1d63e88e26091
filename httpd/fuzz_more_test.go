package httpd

import (
	"bytes"
	"regexp"
	"testing"

	"github.com/zombihq/zombi/engine"
)

// tableNameRE is the table-name rule of DESIGN.md §2, the oracle of both
// hand-written validators.
var tableNameRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_-]{0,127}$`)

func FuzzTableName(f *testing.F) {
	for _, s := range []string{"t", "events", "A-b_9", "..", ".", "a/b", "a\x00b", "1a", "_a", "-a", "t\u00e9st",
		string(bytes.Repeat([]byte("a"), 128)), string(bytes.Repeat([]byte("a"), 129)), "", "a\n", "a\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		want := tableNameRE.MatchString(name)
		if got := engine.ValidTableName(name); got != want {
			t.Fatalf("engine.ValidTableName(%q) = %v, the rule says %v", name, got, want)
		}
		if got := validTable([]byte(name)); got != want {
			t.Fatalf("validTable(%q) = %v, the rule says %v", name, got, want)
		}
	})
}

// The authenticator never panics, and accepts a header only when it holds
// exactly one of the known tokens.
func FuzzBearerToken(f *testing.F) {
	f.Add("Bearer " + tokRead)
	f.Add("bearer  " + tokAdmin + " ")
	f.Add("Basic " + tokRead)
	f.Add("Bearer")
	f.Add("Bearer " + tokRead + "x")
	a, err := newAuthenticator(testTokens)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, authz string) {
		role, ok := a.role([]byte(authz))
		if !ok {
			if role != RoleNone {
				t.Fatalf("unknown token with role %v", role)
			}
			return
		}
		tok, _ := bearerToken([]byte(authz))
		for _, k := range testTokens {
			if k.Secret == string(tok) {
				if k.Role != role {
					t.Fatalf("token %q: role %v, want %v", tok, role, k.Role)
				}
				return
			}
		}
		t.Fatalf("%q accepted as %v", authz, role)
	})
}
