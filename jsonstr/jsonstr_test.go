package jsonstr

import (
	"encoding/json"
	"testing"
)

// AppendUnescaped gives what encoding/json gives for the same string,
// escapes, surrogate pairs and lone surrogates included, after what dst
// already holds.
func TestAppendUnescaped(t *testing.T) {
	for _, raw := range []string{
		``, `plain`, `a\"b\\c\/d`, `\b\f\n\r\t`, `\u0041\u00e9\u20ac`, `caf\u00E9`,
		`\ud83d\ude00`, `x\ud83dy`, `\ude00`, `\ud83d\u0041`, `\ud83d\ud83d\ude00`, `é€😀 raw UTF-8`,
	} {
		var want string
		if err := json.Unmarshal([]byte(`"`+raw+`"`), &want); err != nil {
			t.Fatalf("%q: %v", raw, err)
		}
		if got := string(AppendUnescaped([]byte("pre:"), []byte(raw))); got != "pre:"+want {
			t.Errorf("%q: got %q, want %q", raw, got, "pre:"+want)
		}
	}
}
