package param

import (
	"bytes"
	"strconv"
)

// Read limits of GET /tables/{t}.
const (
	defaultReadLimit = 100
	// MaxReadLimit caps the limit parameter; larger values are lowered to it.
	MaxReadLimit = 10_000
)

// AllPartitions is ReadQuery.Partition when no partition is given: a
// merged read of every partition (engine.AllPartitions).
const AllPartitions = -1

// Field is one column of a read: the Iceberg schema's columns in order.
type Field uint8

const (
	FieldSequence Field = iota
	FieldTopic
	FieldPartition
	FieldPayload
	FieldTimestamp
	FieldKey
	NumFields
)

var fieldNames = [NumFields]string{"sequence", "topic", "partition", "payload", "timestamp_ms", "idempotency_key"}

// FieldSet is a set of fields, bit i for field i.
type FieldSet uint8

// AllFields holds every field.
const AllFields FieldSet = 1<<NumFields - 1

// Has reports whether f is in s.
func (s FieldSet) Has(f Field) bool { return s&(1<<f) != 0 }

// Args is a parsed query string; *fasthttp.Args is one.
type Args interface {
	// Peek returns the value of key, nil when key is absent.
	Peek(key string) []byte
}

// ReadQuery is the parsed query string of GET /tables/{t}.
type ReadQuery struct {
	// Partition is the partition to read, AllPartitions when absent.
	Partition int64
	// Offset is the first offset to return (inclusive).
	Offset uint64
	// Limit bounds the events returned, at most MaxReadLimit; 100 when
	// absent.
	Limit int
	// Since, when HasSince, keeps only events with timestamp_ms >= Since.
	Since    int64
	HasSince bool
	// Fields are the fields asked for; 0 = not given: the format's default.
	Fields FieldSet
}

// ParseReadQuery parses the query string of GET /tables/{t}: partition,
// offset, limit, since, fields. Unknown parameters are ignored, as the
// original does. An error is an *Error.
func ParseReadQuery(args Args) (ReadQuery, error) {
	rq := ReadQuery{Partition: AllPartitions, Limit: defaultReadLimit}
	if v := args.Peek("partition"); v != nil {
		n, err := strconv.ParseUint(string(v), 10, 32)
		if err != nil {
			return rq, invalidInput("Invalid query parameter `partition`: must be a non-negative integer")
		}
		rq.Partition = int64(n)
	}
	if v := args.Peek("offset"); v != nil {
		n, err := strconv.ParseUint(string(v), 10, 64)
		if err != nil {
			return rq, badRequest("Invalid query parameter `offset`: must be a non-negative integer")
		}
		rq.Offset = n
	}
	if v := args.Peek("limit"); v != nil {
		n, err := strconv.ParseUint(string(v), 10, 64)
		if err != nil {
			return rq, badRequest("Invalid query parameter `limit`: must be a non-negative integer")
		}
		rq.Limit = int(min(n, MaxReadLimit))
	}
	if v := args.Peek("since"); v != nil {
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return rq, badRequest("Invalid query parameter `since`: must be an integer (milliseconds)")
		}
		rq.Since, rq.HasSince = n, true
	}
	if v := args.Peek("fields"); v != nil {
		fs, err := parseFields(v)
		if err != nil {
			return rq, err
		}
		rq.Fields = fs
	}
	return rq, nil
}

// parseFields parses a CSV of field names; empty items are skipped and an
// empty list means the default.
func parseFields(v []byte) (FieldSet, error) {
	var fs FieldSet
	for len(v) > 0 {
		item := v
		if i := bytes.IndexByte(v, ','); i >= 0 {
			item, v = v[:i], v[i+1:]
		} else {
			v = nil
		}
		item = bytes.TrimSpace(item)
		if len(item) == 0 {
			continue
		}
		found := false
		for f, name := range fieldNames {
			if string(item) == name {
				fs |= 1 << f
				found = true
				break
			}
		}
		if !found {
			return 0, badRequest("Unknown field '%s'. Valid fields: sequence, topic, partition, payload, timestamp_ms, idempotency_key", item)
		}
	}
	return fs, nil
}

// Media types a read can answer with.
const (
	MediaJSON  = "application/json"
	MediaArrow = "application/vnd.apache.arrow.stream"
)

// Format is the media type of a read's response.
type Format uint8

const (
	FormatJSON  Format = iota
	FormatArrow        // MediaArrow
	FormatNone         // nothing acceptable: 406
)

// Negotiate picks the response format from an Accept header by q-value.
// No header, */* and application/* prefer JSON; a tie between the two
// explicit types goes to the one listed first.
func Negotiate(accept []byte) Format {
	if len(bytes.TrimSpace(accept)) == 0 {
		return FormatJSON
	}
	bestQ := [2]float64{-1, -1} // per format: the q of the most specific matching range
	bestSpec := [2]int{-1, -1}  // its specificity: 0 */*, 1 type/*, 2 exact
	first := [2]int{1 << 30, 1 << 30}
	for i := 0; len(accept) > 0; i++ {
		item := accept
		if j := bytes.IndexByte(accept, ','); j >= 0 {
			item, accept = accept[:j], accept[j+1:]
		} else {
			accept = nil
		}
		mt, q, ok := parseMediaRange(item)
		if !ok {
			continue
		}
		for f, name := range [2]string{MediaJSON, MediaArrow} {
			spec := matchMedia(mt, name)
			if spec < 0 {
				continue
			}
			if spec > bestSpec[f] {
				bestSpec[f], bestQ[f] = spec, q
				if spec == 2 {
					first[f] = i
				}
			}
		}
	}
	jq, aq := bestQ[0], bestQ[1]
	switch {
	case jq <= 0 && aq <= 0:
		return FormatNone
	case aq > jq:
		return FormatArrow
	case jq > aq:
		return FormatJSON
	case bestSpec[1] > bestSpec[0] || (bestSpec[1] == bestSpec[0] && first[1] < first[0]):
		return FormatArrow
	}
	return FormatJSON
}

// parseMediaRange splits "type/subtype;param;q=0.5" into the trimmed
// media type and its q-value (1 when absent).
func parseMediaRange(item []byte) (mt []byte, q float64, ok bool) {
	q = 1
	params := item
	if i := bytes.IndexByte(item, ';'); i >= 0 {
		mt, params = item[:i], item[i+1:]
	} else {
		mt, params = item, nil
	}
	mt = bytes.TrimSpace(mt)
	if len(mt) == 0 {
		return nil, 0, false
	}
	for len(params) > 0 {
		p := params
		if i := bytes.IndexByte(params, ';'); i >= 0 {
			p, params = params[:i], params[i+1:]
		} else {
			params = nil
		}
		p = bytes.TrimSpace(p)
		if len(p) > 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=' {
			v, err := strconv.ParseFloat(string(p[2:]), 64)
			if err != nil || v < 0 || v > 1 {
				return nil, 0, false
			}
			q = v
		}
	}
	return mt, q, true
}

// matchMedia returns how specifically the range mt matches name (2 exact,
// 1 type/*, 0 */*), or -1.
func matchMedia(mt []byte, name string) int {
	switch {
	case bytes.EqualFold(mt, []byte(name)):
		return 2
	case bytes.Equal(mt, []byte("*/*")):
		return 0
	case bytes.EqualFold(mt, []byte("application/*")):
		return 1
	}
	return -1
}
