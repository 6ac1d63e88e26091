package flush

// Ownership in a cluster: a node flushes only the partitions it owns
// (Options.Owns), and the first commit of a partition it took over from
// another node adopts that node's watermark (catalog.Range.Adopt),
// skipping the offsets the handover declared lost.

import "github.com/zombihq/zombi/catalog"

// Takeover says how this server came to own a partition: From ("" when
// nobody held it before) had committed it up to Flushed when it let it
// go, and the offsets Flushed+1..SkipTo (none when SkipTo <= Flushed)
// were handed out by From but never committed: lost with its hot tier,
// they are committed as skipped, and this server numbers its events from
// SkipTo+1 (engine.Advance).
type Takeover struct {
	From            string
	Flushed, SkipTo uint64
}

// owns reports whether this server owns partition p of table, and how it
// took it over.
func (f *Flusher) owns(table string, p uint32) (Takeover, bool) {
	if f.opts.Owns == nil {
		return Takeover{}, true
	}
	return f.opts.Owns(table, p)
}

// handover returns what the next commit of a partition must do about a
// takeover, given its committed mark m: adopt, the node whose mark it
// takes over ("" when none: m is this server's, nobody's, or not the one
// the takeover left), and skipTo, the last offset it skips (0 when none).
func (f *Flusher) handover(tk Takeover, m catalog.Mark) (adopt string, skipTo uint64) {
	if m.Flushed != tk.Flushed {
		return "", 0 // committed on since the takeover (by this server)
	}
	if tk.From != "" && m.Owner == tk.From && tk.From != f.cat.Owner() {
		adopt = tk.From
	}
	if tk.SkipTo > m.Flushed {
		skipTo = tk.SkipTo
	}
	return adopt, skipTo
}

// Reload makes the next flush of table read its committed watermarks
// again: this server has just taken one of its partitions over, and the
// node it took it from may have moved its watermark on.
func (f *Flusher) Reload(table string) {
	f.state(table).reload.Store(true)
}
