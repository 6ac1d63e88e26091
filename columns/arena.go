package columns

// chunkSize is the size of an arena chunk; a larger one is made for a
// larger request.
const chunkSize = 64 << 10

// arena hands out byte slices from a list of chunks. A chunk is never
// reallocated, so what it handed out stays valid as it grows, until reset.
type arena struct {
	chunks [][]byte // chunks[cur] is being filled; its length is what is used
	cur    int
}

// mark is a point in the arena to roll back to.
type mark struct{ cur, n int }

// reserve returns an empty slice with room for n bytes. Append at most n
// bytes to it, then pass the result to commit.
func (a *arena) reserve(n int) []byte {
	if len(a.chunks) > 0 {
		c := a.chunks[a.cur]
		if cap(c)-len(c) >= n {
			return c[len(c) : len(c) : len(c)+n]
		}
		a.cur++
	}
	switch {
	case a.cur < len(a.chunks) && cap(a.chunks[a.cur]) >= n:
		a.chunks[a.cur] = a.chunks[a.cur][:0] // a chunk from before reset
	case a.cur < len(a.chunks):
		a.chunks[a.cur] = make([]byte, 0, max(chunkSize, n)) // too small: replace it
	default:
		a.chunks = append(a.chunks, make([]byte, 0, max(chunkSize, n)))
	}
	return a.chunks[a.cur][:0:n]
}

// commit keeps b, which was appended to the slice reserve returned, and
// returns it with no room to append over what comes next.
func (a *arena) commit(b []byte) []byte {
	c := a.chunks[a.cur]
	a.chunks[a.cur] = c[:len(c)+len(b)]
	return b[:len(b):len(b)]
}

func (a *arena) mark() mark {
	if len(a.chunks) == 0 {
		return mark{}
	}
	return mark{a.cur, len(a.chunks[a.cur])}
}

// rollback drops what was committed since m.
func (a *arena) rollback(m mark) {
	if len(a.chunks) == 0 {
		return
	}
	a.cur = m.cur
	a.chunks[a.cur] = a.chunks[a.cur][:m.n]
}

// reset drops everything and keeps the chunks.
func (a *arena) reset() {
	a.cur = 0
	if len(a.chunks) > 0 {
		a.chunks[0] = a.chunks[0][:0]
	}
}
