package main

// zombi inspect: read a data directory without the server, or beside a
// running one. Everything here opens files read-only (segments with
// segment.OpenOptions{ReadOnly: true}) and takes no lock: the engine holds
// none on disk, and nothing here writes, renames or repairs.
//
// A running server may seal (and so trim) the active segment while it is
// being scanned here; a read of the mapping past the new end of the file
// would raise SIGBUS. Each segment is therefore examined with
// debug.SetPanicOnFault, and a fault is retried after re-reading the header.

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/zombihq/zombi/index"
	"github.com/zombihq/zombi/segment"
	"github.com/zombihq/zombi/vfs"
)

const inspectUsage = `Usage: zombi inspect <command> [args]

Reads a data directory read-only; safe while the server runs. <data-dir>
defaults to $ZOMBI_DATA_DIR, else ./data.

  tables     [<data-dir>]                       tables: partitions, segments, offsets, bytes, backlog
  partitions [<data-dir> [<table>]]             partitions: low/high/flushed watermarks, backlog, lease
  segments   [<data-dir> [<table> [<part>]]]    segments: offsets, records, bytes, times, index state
  verify     [<data-dir>] [-v]                  check every CRC of every segment and checkpoint file;
                                                exit 1 on corruption (file and byte offset printed)
  dump       <segment-file> [--from N] [--limit N] [--json]
                                                print records: offset, time, key, payload (text when
                                                valid UTF-8, else base64)
  cluster    [settings]                         the cluster's nodes, alive or not, and every partition's
                                                owner, from the shared catalog (= zombi cluster status)
`

func inspect(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, inspectUsage)
		return 2
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, inspectUsage)
		return 0
	case "tables", "partitions", "segments":
		return inspectList(cmd, args, stdout, stderr)
	case "verify":
		return inspectVerify(args, stdout, stderr)
	case "dump":
		return inspectDump(args, stdout, stderr)
	case "cluster":
		return clusterCmd(append([]string{"status"}, args...), stdout, stderr, getenv)
	}
	fmt.Fprintf(stderr, "zombi inspect: unknown command %q\n\n%s", cmd, inspectUsage)
	return 2
}

// parseInterspersed parses flags that may come before, between or after
// the positional arguments, and returns the positional ones.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func defaultDataDir() string {
	if d := os.Getenv("ZOMBI_DATA_DIR"); d != "" {
		return d
	}
	return "./data"
}

// partView is what the disk says about one partition log.
type partView struct {
	Table     string
	Partition uint32
	Dir       string
	State     *diskState // nil when missing or damaged
	StateErr  error      // damaged state file
	Segs      []segView
	Corrupt   []string // quarantined *.seg.corrupt files
	Broken    []string // *.seg.broken copies of cut torn tails
}

// segView is what the disk says about one segment file.
type segView struct {
	Path         string
	Base, Last   uint64 // Last = Base-1 when empty
	Records      int
	Bytes        int64 // header + records
	FileBytes    int64 // file size (an active segment is reserved whole)
	Sealed       bool
	MinTs, MaxTs int64  // math.MaxInt64 / math.MinInt64 when empty
	Index        string // sealed: "ok", "missing", "damaged", "stale"; "" when active
	Warning      string // not corruption: a torn tail of an unsealed segment, an index to rebuild
	Err          error  // corruption (a *segment.CorruptionError when the position is known)
}

// diskState is a partition's "state" file (docs/format/segment.md):
//
//	"ZPST" | flushed u64 | lease u64 | boot id len u8 | boot id | crc32c
type diskState struct {
	Flushed uint64
	Lease   uint64
	BootID  string
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// checkpointBody checks a checkpoint file's magic and trailing CRC-32C and
// returns what lies between them.
func checkpointBody(b []byte, magic string) ([]byte, error) {
	if len(b) < len(magic)+4 || string(b[:len(magic)]) != magic {
		return nil, fmt.Errorf("bad magic (want %q)", magic)
	}
	body := b[:len(b)-4]
	if got, want := crc32.Checksum(body, castagnoli), binary.LittleEndian.Uint32(b[len(b)-4:]); got != want {
		return nil, fmt.Errorf("checksum mismatch at byte %d (stored %08x, computed %08x)", len(b)-4, want, got)
	}
	return body[len(magic):], nil
}

func readDiskState(path string) (*diskState, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	body, err := checkpointBody(b, "ZPST")
	if err != nil {
		return nil, err
	}
	if len(body) < 17 || len(body) != 17+int(body[16]) {
		return nil, fmt.Errorf("bad length %d", len(b))
	}
	return &diskState{
		Flushed: binary.LittleEndian.Uint64(body),
		Lease:   binary.LittleEndian.Uint64(body[8:]),
		BootID:  string(body[17:]),
	}, nil
}

// scanDataDir reads every partition of the hot tier, in table and
// partition order. With verify, every record of every segment is read and
// checked; otherwise sealed segments are described from their index.
// table and part ("" = all) narrow the scan.
func scanDataDir(dir, table, part string, verify bool) ([]partView, error) {
	hot := filepath.Join(dir, "hot")
	tables, err := listDir(hot)
	if err != nil {
		return nil, fmt.Errorf("%s is not a zombi data directory: %w", dir, err)
	}
	var out []partView
	for _, t := range tables {
		if table != "" && t != table {
			continue
		}
		parts, err := listDir(filepath.Join(hot, t))
		if err != nil {
			continue // not a directory
		}
		sort.Slice(parts, func(i, j int) bool { return numLess(parts[i], parts[j]) })
		for _, p := range parts {
			n, err := strconv.ParseUint(p, 10, 32)
			if err != nil || (part != "" && p != part) {
				continue
			}
			out = append(out, scanPartition(t, uint32(n), filepath.Join(hot, t, p), verify))
		}
	}
	if table != "" && len(out) == 0 {
		return nil, fmt.Errorf("no table %q with partition %q in %s", table, part, dir)
	}
	return out, nil
}

func numLess(a, b string) bool {
	x, _ := strconv.ParseUint(a, 10, 64)
	y, _ := strconv.ParseUint(b, 10, 64)
	return x < y
}

func listDir(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names, nil
}

func scanPartition(table string, p uint32, dir string, verify bool) partView {
	pv := partView{Table: table, Partition: p, Dir: dir}
	pv.State, pv.StateErr = readDiskState(filepath.Join(dir, "state"))
	if errors.Is(pv.StateErr, os.ErrNotExist) {
		pv.StateErr = nil
	}
	names, _ := listDir(dir)
	for _, n := range names {
		path := filepath.Join(dir, n)
		switch {
		case strings.HasSuffix(n, ".seg"):
			if _, err := strconv.ParseUint(strings.TrimSuffix(n, ".seg"), 10, 64); err != nil {
				continue
			}
			sv, gone := examineSegment(path, verify)
			if !gone { // deleted by retention while we looked: not ours to report
				pv.Segs = append(pv.Segs, sv)
			}
		case strings.HasSuffix(n, ".seg.corrupt"):
			pv.Corrupt = append(pv.Corrupt, path)
		case strings.HasSuffix(n, ".seg.broken"):
			pv.Broken = append(pv.Broken, path)
		}
	}
	return pv
}

var errFault = errors.New("memory fault reading the mapping (the server trimmed the file meanwhile)")

// guarded runs fn with memory faults turned into an errFault.
func guarded(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", errFault, r)
		}
	}()
	return fn()
}

// examineSegment describes one segment file; gone is true when the file
// vanished (deleted by the server) before it could be read.
func examineSegment(path string, verify bool) (sv segView, gone bool) {
	for try := 0; ; try++ {
		err := guarded(func() error {
			sv = examineOnce(path, verify)
			return nil
		})
		if err == nil || try == 2 {
			if err != nil {
				sv = segView{Path: path, Err: err}
			}
			break
		}
	}
	if errors.Is(sv.Err, os.ErrNotExist) {
		return sv, true
	}
	return sv, false
}

func examineOnce(path string, verify bool) segView {
	sv := segView{Path: path, MinTs: math.MaxInt64, MaxTs: math.MinInt64}
	if fi, err := os.Stat(path); err == nil {
		sv.FileBytes = fi.Size()
	}
	h, err := segment.ReadHeader(vfs.Default, path)
	if errors.Is(err, segment.ErrNoHeader) {
		sv.Warning = "header never written (a crash while creating it); removed at the next start"
		return sv
	}
	if err != nil {
		sv.Err = err
		return sv
	}
	sv.Base, sv.Last, sv.Sealed = h.Base, h.Base-1, h.Sealed
	visit := func(_ int64, r *segment.Record) {
		sv.MinTs = min(sv.MinTs, r.TimestampMs)
		sv.MaxTs = max(sv.MaxTs, r.TimestampMs)
	}
	if !h.Sealed {
		s, rec, err := segment.Open(vfs.Default, path, segment.OpenOptions{ReadOnly: true, Visit: visit})
		sv.Records = rec.Records
		sv.Last = h.Base + uint64(rec.Records) - 1
		var ce *segment.CorruptionError
		switch {
		case errors.As(err, &ce) && ce.Offset >= segment.HeaderSize:
			sv.Bytes = ce.Offset
			sv.Warning = fmt.Sprintf("unsealed segment ends in a torn or in-progress record at byte %d (%v); "+
				"a running server is still writing it, a stopped one cuts it at the next start", ce.Offset, ce.Err)
		case err != nil:
			sv.Err = err
		default:
			sv.Bytes = s.Size()
			s.Close()
		}
		return sv
	}

	sv.Bytes = h.DataLength
	idx, idxState := readIndex(path, h)
	sv.Index = idxState
	if idxState == "ok" && !verify {
		sv.Records, sv.MinTs, sv.MaxTs = int(idx.Count), idx.MinTs, idx.MaxTs
		sv.Last = h.Base + uint64(idx.Count) - 1
		return sv
	}
	s, _, err := segment.Open(vfs.Default, path, segment.OpenOptions{ReadOnly: true})
	if err != nil {
		sv.Err = err
		return sv
	}
	defer s.Close()
	n, err := s.Verify(visit)
	sv.Records, sv.Last, sv.Err = n, h.Base+uint64(n)-1, err
	if err == nil && idxState == "ok" && (int(idx.Count) != n || idx.MinTs != sv.MinTs || idx.MaxTs != sv.MaxTs) {
		sv.Index = "stale"
	}
	if err == nil && sv.Index != "ok" {
		sv.Warning = "index " + sv.Index + ": rebuilt from the segment at the next start"
	}
	return sv
}

// readIndex reads the .idx of a sealed segment and checks it against the
// segment's header.
func readIndex(segPath string, h segment.Header) (index.Index, string) {
	var idx index.Index
	b, err := os.ReadFile(strings.TrimSuffix(segPath, ".seg") + ".idx")
	if errors.Is(err, os.ErrNotExist) {
		return idx, "missing"
	}
	if err != nil {
		return idx, "damaged"
	}
	if _, err := idx.Unmarshal(b); err != nil || idx.Base != h.Base || int64(idx.DataLen) != h.DataLength {
		return idx, "damaged"
	}
	return idx, "ok"
}

// partSummary sums a partition's segments.
type partSummary struct {
	Low, High, Flushed, Backlog uint64
	Records                     int
	Segments                    int
	Bytes                       int64
}

func summarize(pv *partView) partSummary {
	var s partSummary
	if pv.State != nil {
		s.Flushed = pv.State.Flushed
	}
	s.High = s.Flushed
	s.Low = s.Flushed + 1
	first := true
	for _, sg := range pv.Segs {
		s.Segments++
		s.Bytes += sg.Bytes
		if sg.Records == 0 {
			continue
		}
		s.Records += sg.Records
		if first {
			s.Low, first = sg.Base, false
		}
		s.High = max(s.High, sg.Last)
	}
	if s.High > s.Flushed {
		s.Backlog = s.High - s.Flushed
	}
	return s
}

func inspectList(cmd string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("zombi inspect "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return 2
	}
	maxPos := map[string]int{"tables": 1, "partitions": 2, "segments": 3}[cmd]
	if len(pos) > maxPos {
		fmt.Fprint(stderr, inspectUsage)
		return 2
	}
	dir, table, part := defaultDataDir(), "", ""
	if len(pos) > 0 {
		dir = pos[0]
	}
	if len(pos) > 1 {
		table = pos[1]
	}
	if len(pos) > 2 {
		part = pos[2]
	}
	parts, err := scanDataDir(dir, table, part, false)
	if err != nil {
		fmt.Fprintf(stderr, "zombi inspect: %v\n", err)
		return 1
	}
	switch cmd {
	case "tables":
		listTables(stdout, parts, *asJSON)
	case "partitions":
		listPartitions(stdout, parts, *asJSON)
	default:
		listSegments(stdout, parts, *asJSON)
	}
	return 0
}

func writeJSONOut(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func listTables(w io.Writer, parts []partView, asJSON bool) {
	type row struct {
		Table      string `json:"table"`
		Partitions int    `json:"partitions"`
		Segments   int    `json:"segments"`
		Records    int    `json:"records"`
		Bytes      int64  `json:"bytes"`
		Backlog    uint64 `json:"unflushed"`
		Problems   int    `json:"problems"`
	}
	var rows []row
	for i := range parts {
		pv := &parts[i]
		if len(rows) == 0 || rows[len(rows)-1].Table != pv.Table {
			rows = append(rows, row{Table: pv.Table})
		}
		r := &rows[len(rows)-1]
		s := summarize(pv)
		r.Partitions++
		r.Segments += s.Segments
		r.Records += s.Records
		r.Bytes += s.Bytes
		r.Backlog += s.Backlog
		r.Problems += len(partNotes(pv))
	}
	if asJSON {
		writeJSONOut(w, rows)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tPARTITIONS\tSEGMENTS\tRECORDS\tBYTES\tUNFLUSHED\tNOTES")
	for _, r := range rows {
		notes := ""
		if r.Problems > 0 {
			notes = fmt.Sprintf("%d note(s): see zombi inspect partitions", r.Problems)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%d\t%s\n", r.Table, r.Partitions, r.Segments, r.Records, humanBytes(r.Bytes), r.Backlog, notes)
	}
	tw.Flush()
}

// partNotes lists what an operator should know about a partition.
func partNotes(pv *partView) []string {
	var notes []string
	if pv.StateErr != nil {
		notes = append(notes, "state file damaged: "+pv.StateErr.Error())
	} else if pv.State == nil {
		notes = append(notes, "no state file")
	}
	if n := len(pv.Corrupt); n > 0 {
		notes = append(notes, fmt.Sprintf("%d quarantined segment(s)", n))
	}
	if n := len(pv.Broken); n > 0 {
		notes = append(notes, fmt.Sprintf("%d torn tail copy(ies)", n))
	}
	for _, sg := range pv.Segs {
		if sg.Err != nil {
			notes = append(notes, filepath.Base(sg.Path)+" corrupt")
		}
	}
	if g := unflushedGap(pv); g != "" {
		notes = append(notes, g)
	}
	return notes
}

// unflushedGap names the first run of offsets after the flushed watermark
// that no sound segment holds: the cold tier stops the partition there
// until they are skipped.
func unflushedGap(pv *partView) string {
	if pv.State == nil {
		return ""
	}
	next := pv.State.Flushed + 1
	for _, sg := range pv.Segs {
		if sg.Err != nil || sg.Last < sg.Base || sg.Last < next {
			continue
		}
		if sg.Base > next {
			return fmt.Sprintf("offsets %d..%d missing, never flushed: the flush stops at %d (POST /tables/%s/skip-gap?partition=%d)",
				next, sg.Base-1, next, pv.Table, pv.Partition)
		}
		next = sg.Last + 1
	}
	return ""
}

func listPartitions(w io.Writer, parts []partView, asJSON bool) {
	if asJSON {
		type row struct {
			Table     string   `json:"table"`
			Partition uint32   `json:"partition"`
			Low       uint64   `json:"low"`
			High      uint64   `json:"high_watermark"`
			Flushed   uint64   `json:"watermark"`
			Backlog   uint64   `json:"unflushed"`
			Records   int      `json:"records"`
			Segments  int      `json:"segments"`
			Bytes     int64    `json:"bytes"`
			Lease     uint64   `json:"lease"`
			BootID    string   `json:"boot_id,omitempty"`
			Notes     []string `json:"notes,omitempty"`
		}
		rows := []row{}
		for i := range parts {
			pv := &parts[i]
			s := summarize(pv)
			r := row{Table: pv.Table, Partition: pv.Partition, Low: s.Low, High: s.High, Flushed: s.Flushed,
				Backlog: s.Backlog, Records: s.Records, Segments: s.Segments, Bytes: s.Bytes, Notes: partNotes(pv)}
			if pv.State != nil {
				r.Lease, r.BootID = pv.State.Lease, pv.State.BootID
			}
			rows = append(rows, r)
		}
		writeJSONOut(w, rows)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tPARTITION\tLOW\tHIGH\tFLUSHED\tUNFLUSHED\tRECORDS\tSEGMENTS\tBYTES\tLEASE\tNOTES")
	for i := range parts {
		pv := &parts[i]
		s := summarize(pv)
		lease := "-"
		if pv.State != nil {
			lease = strconv.FormatUint(pv.State.Lease, 10)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\n", pv.Table, pv.Partition, s.Low, s.High, s.Flushed,
			s.Backlog, s.Records, s.Segments, humanBytes(s.Bytes), lease, strings.Join(partNotes(pv), "; "))
	}
	tw.Flush()
	fmt.Fprintln(w, "\nLOW/HIGH: first and last offset in the hot tier; FLUSHED: last offset committed to Iceberg;\nLEASE: offsets below it may have been handed out (the next start continues from it after a reboot).")
}

func listSegments(w io.Writer, parts []partView, asJSON bool) {
	type row struct {
		Table     string `json:"table"`
		Partition uint32 `json:"partition"`
		File      string `json:"file"`
		First     uint64 `json:"first"`
		Last      uint64 `json:"last"`
		Records   int    `json:"records"`
		Bytes     int64  `json:"bytes"`
		FileBytes int64  `json:"file_bytes"`
		State     string `json:"state"`
		MinTs     *int64 `json:"min_timestamp_ms,omitempty"`
		MaxTs     *int64 `json:"max_timestamp_ms,omitempty"`
		Index     string `json:"index,omitempty"`
		Note      string `json:"note,omitempty"`
	}
	rows := []row{}
	for i := range parts {
		pv := &parts[i]
		for _, sg := range pv.Segs {
			r := row{Table: pv.Table, Partition: pv.Partition, File: sg.Path, First: sg.Base, Last: sg.Last,
				Records: sg.Records, Bytes: sg.Bytes, FileBytes: sg.FileBytes, State: "active", Index: sg.Index, Note: sg.Warning}
			if sg.Sealed {
				r.State = "sealed"
			}
			if pv.State != nil && sg.Records > 0 && sg.Last <= pv.State.Flushed {
				r.State += ",flushed"
			}
			if sg.Records > 0 {
				r.MinTs, r.MaxTs = &sg.MinTs, &sg.MaxTs
			}
			if sg.Err != nil {
				r.State, r.Note = "CORRUPT", sg.Err.Error()
			}
			rows = append(rows, r)
		}
		for _, c := range pv.Corrupt {
			rows = append(rows, row{Table: pv.Table, Partition: pv.Partition, File: c, State: "quarantined",
				Note: "set aside at recovery, never served; zombi inspect dump shows what it still holds"})
		}
	}
	if asJSON {
		writeJSONOut(w, rows)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tPARTITION\tFILE\tFIRST\tLAST\tRECORDS\tBYTES\tSTATE\tMIN TIME\tMAX TIME\tINDEX\tNOTE")
	for _, r := range rows {
		minT, maxT := "-", "-"
		if r.MinTs != nil {
			minT, maxT = fmtMs(*r.MinTs), fmtMs(*r.MaxTs)
		}
		idx := r.Index
		if idx == "" {
			idx = "-"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Table, r.Partition, filepath.Base(r.File),
			r.First, r.Last, r.Records, humanBytes(r.Bytes), r.State, minT, maxT, idx, r.Note)
	}
	tw.Flush()
}

func fmtMs(ms int64) string { return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z") }

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1fGiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1fKiB", float64(n)/(1<<10))
	}
	return strconv.FormatInt(n, 10) + "B"
}

// inspectVerify checks every CRC under a data directory: every record of
// every segment (and that sequences follow each other), the segments'
// headers, and the checkpoint files (state, idem, consumers).
func inspectVerify(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("zombi inspect verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	verbose := fs.Bool("v", false, "print every file checked, not only problems")
	pos, err := parseInterspersed(fs, args)
	if err != nil || len(pos) > 1 {
		return 2
	}
	dir := defaultDataDir()
	if len(pos) == 1 {
		dir = pos[0]
	}
	parts, err := scanDataDir(dir, "", "", true)
	if err != nil {
		fmt.Fprintf(stderr, "zombi inspect verify: %v\n", err)
		return 1
	}
	var segs, records, corrupt, warnings int
	var bytes int64
	report := func(kind, path, msg string) {
		fmt.Fprintf(stdout, "%-8s %s: %s\n", kind, path, msg)
	}
	for i := range parts {
		pv := &parts[i]
		if pv.StateErr != nil {
			corrupt++
			report("CORRUPT", filepath.Join(pv.Dir, "state"), pv.StateErr.Error())
		}
		if err := verifyCheckpoint(filepath.Join(pv.Dir, "idem"), "ZIDM"); err != nil {
			corrupt++
			report("CORRUPT", filepath.Join(pv.Dir, "idem"), err.Error())
		}
		for _, c := range pv.Corrupt {
			corrupt++
			report("CORRUPT", c, "quarantined at recovery (never served)")
		}
		for _, b := range pv.Broken {
			warnings++
			report("WARN", b, "copy of a torn tail cut at recovery (records that were never acknowledged durable)")
		}
		for _, sg := range pv.Segs {
			segs++
			records += sg.Records
			bytes += sg.Bytes
			var ce *segment.CorruptionError
			switch {
			case errors.As(sg.Err, &ce):
				corrupt++
				report("CORRUPT", sg.Path, fmt.Sprintf("at byte %d: %v (after %d good records)", ce.Offset, ce.Err, sg.Records))
			case sg.Err != nil:
				corrupt++
				report("CORRUPT", sg.Path, sg.Err.Error())
			case sg.Warning != "":
				warnings++
				report("WARN", sg.Path, sg.Warning)
			case *verbose:
				state := "active"
				if sg.Sealed {
					state = "sealed"
				}
				report("OK", sg.Path, fmt.Sprintf("%s, offsets %d-%d, %d records, %s", state, sg.Base, sg.Last, sg.Records, humanBytes(sg.Bytes)))
			}
		}
	}
	if err := verifyCheckpoint(filepath.Join(dir, "consumers"), "ZCON"); err != nil {
		corrupt++
		report("CORRUPT", filepath.Join(dir, "consumers"), err.Error())
	}
	fmt.Fprintf(stdout, "verified %d partitions, %d segments, %d records, %s: %d corrupt, %d warnings\n",
		len(parts), segs, records, humanBytes(bytes), corrupt, warnings)
	if corrupt > 0 {
		return 1
	}
	return 0
}

// verifyCheckpoint checks an optional checkpoint file's magic and CRC.
func verifyCheckpoint(path, magic string) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	_, err = checkpointBody(b, magic)
	return err
}

// inspectDump prints the records of one segment file (also a quarantined
// *.seg.corrupt one, up to its damage).
func inspectDump(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("zombi inspect dump", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.Uint64("from", 0, "first offset to print (default: the segment's first)")
	limit := fs.Int("limit", 0, "print at most this many records (0: all)")
	asJSON := fs.Bool("json", false, "one JSON object a line: offset, timestamp_ms, idempotency_key, payload or payload_base64")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 1 {
		fmt.Fprint(stderr, "Usage: zombi inspect dump <segment-file> [--from N] [--limit N] [--json]\n")
		return 2
	}
	path := pos[0]
	printed := 0
	done := func() bool { return *limit > 0 && printed >= *limit }
	emit := func(r *segment.Record) {
		if r.Seq < *from || done() {
			return
		}
		printed++
		writeRecord(stdout, r, *asJSON)
	}
	var dumpErr error
	var warn string
	err = guarded(func() error {
		h, err := segment.ReadHeader(vfs.Default, path)
		if err != nil {
			return err
		}
		if !h.Sealed {
			_, _, err := segment.Open(vfs.Default, path, segment.OpenOptions{ReadOnly: true, Visit: func(_ int64, r *segment.Record) { emit(r) }})
			var ce *segment.CorruptionError
			if errors.As(err, &ce) && ce.Offset >= segment.HeaderSize {
				warn = fmt.Sprintf("unsealed segment: the data ends in a torn or in-progress record at byte %d (%v)", ce.Offset, ce.Err)
				return nil
			}
			return err
		}
		s, _, err := segment.Open(vfs.Default, path, segment.OpenOptions{ReadOnly: true})
		if err != nil {
			return err
		}
		defer s.Close()
		start := int64(segment.HeaderSize)
		if idx, state := readIndex(path, h); state == "ok" {
			if e, ok := idx.Seek(*from); ok {
				start = int64(e.Pos)
			}
		}
		it := s.Iter(start)
		for !done() && it.Next() {
			emit(it.Record())
		}
		dumpErr = it.Err()
		return nil
	})
	if err == nil {
		err = dumpErr
	}
	if warn != "" {
		fmt.Fprintf(stderr, "zombi inspect dump: %s\n", warn)
	}
	if err != nil {
		var ce *segment.CorruptionError
		if errors.As(err, &ce) {
			fmt.Fprintf(stderr, "zombi inspect dump: %s: corrupt at byte %d: %v\n", ce.Path, ce.Offset, ce.Err)
		} else {
			fmt.Fprintf(stderr, "zombi inspect dump: %v\n", err)
		}
		return 1
	}
	return 0
}

func writeRecord(w io.Writer, r *segment.Record, asJSON bool) {
	text := utf8.Valid(r.Payload)
	if asJSON {
		b := []byte(`{"offset":`)
		b = strconv.AppendUint(b, r.Seq, 10)
		b = append(b, `,"timestamp_ms":`...)
		b = strconv.AppendInt(b, r.TimestampMs, 10)
		if len(r.Key) > 0 {
			b = append(b, `,"idempotency_key":`...)
			b = appendJSONString(b, string(r.Key))
		}
		if text {
			b = append(b, `,"payload":`...)
			b = appendJSONString(b, string(r.Payload))
		} else {
			b = append(b, `,"payload_base64":"`...)
			b = base64.StdEncoding.AppendEncode(b, r.Payload)
			b = append(b, '"')
		}
		b = append(b, "}\n"...)
		w.Write(b)
		return
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "offset=%d time=%s (%d)", r.Seq, fmtMs(r.TimestampMs), r.TimestampMs)
	if len(r.Key) > 0 {
		fmt.Fprintf(&sb, " key=%s", strconv.Quote(string(r.Key)))
	}
	if text {
		fmt.Fprintf(&sb, " payload=%s\n", strconv.Quote(string(r.Payload)))
	} else {
		fmt.Fprintf(&sb, " payload_base64=%s\n", base64.StdEncoding.EncodeToString(r.Payload))
	}
	io.WriteString(w, sb.String())
}

func appendJSONString(b []byte, s string) []byte {
	j, _ := json.Marshal(s)
	return append(b, j...)
}
