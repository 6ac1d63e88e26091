package bench

import "testing"

func TestFreshPayloadsDiffer(t *testing.T) {
	g := newPayloadGen(3, 82, false, true)
	a := string(g.next(0))
	b := string(g.next(1))
	if a == b || len(a) != 82 || len(b) != 82 {
		t.Fatalf("fresh payloads repeat or have the wrong size: %q %q", a, b)
	}
	u := newPayloadGen(3, 82, true, true)
	if p := string(u.next(42)); p[:6] != "w3-42-" || len(p) != 82 {
		t.Fatalf("unique fresh payload %q", p)
	}
}
