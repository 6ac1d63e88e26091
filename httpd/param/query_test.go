package param

import "testing"

func TestParseReadQuery(t *testing.T) {
	rq, err := ParseReadQuery(parseQuery("partition=3&offset=10&limit=99999&since=-5&fields=topic,+payload,,&other=x"))
	want := ReadQuery{Partition: 3, Offset: 10, Limit: MaxReadLimit, Since: -5, HasSince: true,
		Fields: 1<<FieldTopic | 1<<FieldPayload}
	if err != nil || rq != want {
		t.Fatalf("got %+v, %v; want %+v", rq, err, want)
	}
	if rq, err := ParseReadQuery(parseQuery("")); err != nil || rq != (ReadQuery{Partition: AllPartitions, Limit: 100}) {
		t.Fatalf("defaults: %+v, %v", rq, err)
	}
	for query, kind := range map[string]Kind{
		"partition=-1":         InvalidInput,
		"partition=4294967296": InvalidInput,
		"partition=":           InvalidInput,
		"offset=x":             BadRequest,
		"limit=-1":             BadRequest,
		"since=1.5":            BadRequest,
		"fields=payload,bogus": BadRequest,
	} {
		_, err := ParseReadQuery(parseQuery(query))
		e, ok := err.(*Error)
		if !ok || e.Kind != kind {
			t.Errorf("%s: %v, want an error of kind %d", query, err, kind)
		}
	}
}

func TestNegotiate(t *testing.T) {
	for accept, want := range map[string]Format{
		"":                                      FormatJSON,
		"*/*":                                   FormatJSON,
		"application/json":                      FormatJSON,
		"APPLICATION/JSON; charset=utf-8":       FormatJSON,
		MediaArrow:                              FormatArrow,
		"application/json;q=0.1, " + MediaArrow: FormatArrow,
		MediaArrow + ";q=0.1, application/json": FormatJSON,
		MediaArrow + ", application/json":       FormatArrow,
		"application/json, " + MediaArrow:       FormatJSON,
		"text/html":                             FormatNone,
		"*/*;q=0":                               FormatNone,
		"application/json;q=0, */*":             FormatArrow,
		MediaArrow + ", */*;q=0.5":              FormatArrow,
		"text/html;q=x, application/json":       FormatJSON,
	} {
		if got := Negotiate([]byte(accept)); got != want {
			t.Errorf("Negotiate(%q) = %d, want %d", accept, got, want)
		}
	}
}
