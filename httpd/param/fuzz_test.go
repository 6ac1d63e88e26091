package param

import (
	"bytes"
	"net/url"
	"regexp"
	"testing"

	"github.com/zombihq/zombi/engine"
)

// queryArgs is a query string parsed by net/url, as Args: the first value
// of a key, nil when it is absent.
type queryArgs url.Values

func (q queryArgs) Peek(key string) []byte {
	if vs := q[key]; len(vs) > 0 {
		return []byte(vs[0])
	}
	return nil
}

func parseQuery(query string) queryArgs {
	v, _ := url.ParseQuery(query) // a malformed pair is skipped; the rest is kept
	return queryArgs(v)
}

func FuzzReadQuery(f *testing.F) {
	for _, s := range []string{
		"", "partition=0&offset=10&limit=5", "since=-5&fields=payload,timestamp_ms",
		"fields=sequence,,topic, partition ,idempotency_key", "limit=99999999999", "fields=bogus",
		"partition=4294967296", "offset=%31%32", "limit=&offset=",
	} {
		f.Add(s, "application/json;q=0.5, application/vnd.apache.arrow.stream")
	}
	f.Add("limit=1", "*/*;q=0, text/*")
	f.Fuzz(func(t *testing.T, query, accept string) {
		rq, err := ParseReadQuery(parseQuery(query))
		if err == nil {
			if rq.Limit < 0 || rq.Limit > MaxReadLimit {
				t.Fatalf("limit %d", rq.Limit)
			}
			if rq.Partition < AllPartitions || rq.Partition > 1<<32-1 {
				t.Fatalf("partition %d", rq.Partition)
			}
			if rq.Fields&^AllFields != 0 {
				t.Fatalf("fields %b", rq.Fields)
			}
		} else if _, ok := err.(*Error); !ok {
			t.Fatalf("error %T %v, want an *Error", err, err)
		}
		if f := Negotiate([]byte(accept)); f > FormatNone {
			t.Fatalf("format %d", f)
		}
	})
}

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
		if got := ValidTableName([]byte(name)); got != want {
			t.Fatalf("ValidTableName(%q) = %v, the rule says %v", name, got, want)
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
	a, err := NewAuthenticator(testTokens)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, authz string) {
		role, ok := a.Role([]byte(authz))
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
