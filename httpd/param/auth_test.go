package param

import (
	"strings"
	"testing"
)

// Tokens of every role, for the tests (the same as httpd's, which the
// FuzzBearerToken corpus uses).
const (
	tokMetrics = "metrics-0123456789abcdef"
	tokRead    = "read-0123456789abcdef"
	tokWrite   = "write-0123456789abcdef"
	tokAdmin   = "admin-0123456789abcdef/+=="
)

var testTokens = []Token{{tokMetrics, RoleMetrics}, {tokRead, RoleRead}, {tokWrite, RoleWrite}, {tokAdmin, RoleAdmin}}

func TestParseTokens(t *testing.T) {
	toks, err := ParseTokens(" " + tokWrite + ":write, " + tokRead + ":read ,\n# a comment\n\n" + tokAdmin + ":admin\n" + tokMetrics + " : metrics,")
	if err != nil {
		t.Fatal(err)
	}
	want := []Token{{tokWrite, RoleWrite}, {tokRead, RoleRead}, {tokAdmin, RoleAdmin}, {tokMetrics, RoleMetrics}}
	if len(toks) != len(want) {
		t.Fatalf("tokens %v", toks)
	}
	for i := range want {
		if toks[i] != want[i] {
			t.Fatalf("token %d: %v, want %v", i, toks[i], want[i])
		}
	}
	const secret = "s3cr3t-s3cr3t-s3cr3t"
	for spec, wantErr := range map[string]string{
		"":                                      "no token given",
		"# only a comment\n":                    "no token given",
		secret:                                  "entry 1: want token:role",
		secret + ":root":                        `entry 1: unknown role "root"`,
		"short:read":                            "16 to 1024",
		strings.Repeat("x", 1025) + ":read":     "16 to 1024",
		"secret with spaces ok:read":            "may only contain",
		secret + ":read,\n" + secret + ":write": "entry 2: same token as entry 1",
		"s3cr3t-s3cr3t-s3cr3\u00e9:read":        "may only contain",
	} {
		_, err := ParseTokens(spec)
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("ParseTokens(%q): %v, want %q", spec, err, wantErr)
			continue
		}
		if strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("error quotes the token: %v", err)
		}
	}
}
