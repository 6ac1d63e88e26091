package segment_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"path/filepath"
	"testing"

	"github.com/zombihq/zombi/segment"
	"github.com/zombihq/zombi/vfs"
)

const (
	corruptBase     = 100
	corruptRecords  = 5
	corruptCapacity = 1024
)

// corruption is one way to damage a segment of corruptRecords records.
type corruption struct {
	// corrupt damages the file bytes b in place; pos holds the byte
	// position of every record and, last, the end of the data.
	corrupt func(b []byte, pos []int64)
	// bad is the index of the first record that is no longer valid.
	bad int
	// clean means an unsealed segment ends cleanly at bad: no torn tail.
	clean bool
	// err is what reading record bad of a sealed segment (or a read-only
	// open of an unsealed one) reports, wrapped in a *CorruptionError.
	err error
	// headerErr, when set, is what Open itself returns for either kind.
	headerErr error
	// corruptionErr says whether headerErr comes as a *CorruptionError.
	corruptionErr bool
}

func setHeaderCRC(b []byte) {
	binary.LittleEndian.PutUint32(b[32:], crc32.Checksum(b[:32], crc32.MakeTable(crc32.Castagnoli)))
}

var corruptions = map[string]corruption{
	"torn_last_record": {
		// Only the first half of the last record reached the disk.
		corrupt: func(b []byte, pos []int64) { clear(b[(pos[4]+pos[5])/2 : pos[5]]) },
		bad:     4, err: segment.ErrChecksum,
	},
	"bad_checksum": {
		corrupt: func(b []byte, pos []int64) { b[pos[2]] ^= 0xff },
		bad:     2, err: segment.ErrChecksum,
	},
	"bad_length": {
		corrupt: func(b []byte, pos []int64) { binary.LittleEndian.PutUint32(b[pos[2]+4:], 3) },
		bad:     2, err: segment.ErrBadLength,
	},
	"bad_length_huge": {
		corrupt: func(b []byte, pos []int64) { binary.LittleEndian.PutUint32(b[pos[2]+4:], 0xffffffff) },
		bad:     2, err: segment.ErrBadLength,
	},
	"length_past_end": {
		corrupt: func(b []byte, pos []int64) { binary.LittleEndian.PutUint32(b[pos[4]+4:], 1<<20) },
		bad:     4, err: segment.ErrUnexpectedEOF,
	},
	"zeroed_tail": {
		corrupt: func(b []byte, pos []int64) { clear(b[pos[3]:pos[5]]) },
		bad:     3, clean: true, err: segment.ErrUnexpectedEOF,
	},
	"bit_flip_mid_sealed_segment": {
		corrupt: func(b []byte, pos []int64) { b[pos[2]+segment.RecordHeaderSize+3] ^= 0x10 },
		bad:     2, err: segment.ErrChecksum,
	},
	"garbage_after_zero_gap": {
		// Record 2 never reached the disk but 3 and 4 did.
		corrupt: func(b []byte, pos []int64) { clear(b[pos[2]:pos[3]]) },
		bad:     2, err: segment.ErrUnexpectedEOF,
	},
	"bad_sequence": {
		// A well-formed record with the wrong sequence (a stale write).
		corrupt: func(b []byte, pos []int64) {
			r := makeRecords(corruptBase, 3)[2]
			r.Seq = 999
			segment.AppendRecord(b[pos[2]:pos[2]], &r)
		},
		bad: 2, err: segment.ErrSequence,
	},
	"bad_header": {
		corrupt:   func(b []byte, pos []int64) { b[9] ^= 1 },
		headerErr: segment.ErrBadHeader, corruptionErr: true,
	},
	"future_version": {
		corrupt:   func(b []byte, pos []int64) { b[4] = 2; setHeaderCRC(b) },
		headerErr: segment.ErrVersion, corruptionErr: true,
	},
	"no_header": {
		corrupt:   func(b []byte, pos []int64) { clear(b[:segment.HeaderSize]) },
		headerErr: segment.ErrNoHeader,
	},
}

// buildCorruptible writes a segment of corruptRecords records at path and
// returns the record positions (plus the end of the data).
func buildCorruptible(t testing.TB, fsys vfs.FS, path string, sealed bool) []int64 {
	s, err := segment.Create(fsys, path, corruptBase, corruptCapacity, 1)
	if err != nil {
		t.Fatal(err)
	}
	var pos []int64
	for _, r := range makeRecords(corruptBase, corruptRecords) {
		p, err := s.Append(r)
		if err != nil {
			t.Fatal(err)
		}
		pos = append(pos, p)
	}
	pos = append(pos, s.End())
	if sealed {
		err = s.Seal()
	} else {
		err = s.Sync()
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return pos
}

func trimZeros(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return b
}

// checkCorruptionErr fails unless err is a *CorruptionError for path at
// offset that wraps want.
func checkCorruptionErr(t *testing.T, err error, path string, offset int64, want error) {
	t.Helper()
	var ce *segment.CorruptionError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T) is not a *CorruptionError", err, err)
	}
	if ce.Path != path || ce.Offset != offset {
		t.Fatalf("corruption reported at %s:%d, want %s:%d (%v)", ce.Path, ce.Offset, path, offset, err)
	}
	if !errors.Is(err, want) {
		t.Fatalf("error %v does not wrap %v", err, want)
	}
}

func TestCorruptionUnsealed(t *testing.T) {
	for name, c := range corruptions {
		t.Run(name, func(t *testing.T) {
			forEachFS(t, func(t *testing.T, fsys vfs.FS, dir string) {
				path := filepath.Join(dir, "00000000000000000100.seg")
				pos := buildCorruptible(t, fsys, path, false)
				damaged := readFile(t, fsys, path)
				c.corrupt(damaged, pos)
				writeFile(t, fsys, path, damaged)

				if c.headerErr != nil {
					for _, ro := range []bool{true, false} {
						s, _, err := segment.Open(fsys, path, segment.OpenOptions{ReadOnly: ro})
						if s != nil || !errors.Is(err, c.headerErr) {
							t.Fatalf("ReadOnly=%v: Open = %v, %v; want %v", ro, s, err, c.headerErr)
						}
						var ce *segment.CorruptionError
						if errors.As(err, &ce) != c.corruptionErr {
							t.Fatalf("ReadOnly=%v: %v: *CorruptionError is %v, want %v", ro, err, !c.corruptionErr, c.corruptionErr)
						}
						if c.corruptionErr && (ce.Path != path || ce.Offset != 0) {
							t.Fatalf("corruption at %s:%d, want %s:0", ce.Path, ce.Offset, path)
						}
					}
					if !bytes.Equal(readFile(t, fsys, path), damaged) || exists(fsys, path+".broken") {
						t.Fatal("Open of a segment with a bad header modified it")
					}
					return
				}

				// A read-only open reports the damage and changes nothing.
				s, rec, err := segment.Open(fsys, path, segment.OpenOptions{ReadOnly: true})
				if c.clean {
					if err != nil || rec.Records != c.bad {
						t.Fatalf("read-only Open = %+v, %v; want %d records", rec, err, c.bad)
					}
					mustClose(t, s)
				} else {
					if s != nil {
						t.Fatal("read-only Open returned a segment with an error")
					}
					checkCorruptionErr(t, err, path, pos[c.bad], c.err)
				}
				if !bytes.Equal(readFile(t, fsys, path), damaged) || exists(fsys, path+".broken") {
					t.Fatal("read-only Open modified the segment")
				}

				// A read-write open keeps exactly the valid prefix.
				var visited []collected
				s, rec, err = segment.Open(fsys, path, segment.OpenOptions{Visit: func(p int64, r *segment.Record) {
					visited = append(visited, collected{p, copyRecord(r)})
				}})
				if err != nil {
					t.Fatal(err)
				}
				want := makeRecords(corruptBase, corruptRecords)
				checkRecords(t, visited, want[:c.bad])
				for i, v := range visited {
					if v.pos != pos[i] {
						t.Fatalf("record %d visited at %d, want %d", i, v.pos, pos[i])
					}
				}
				if rec.Records != c.bad || s.Next() != corruptBase+uint64(c.bad) || s.Size() != pos[c.bad] {
					t.Fatalf("recovery %+v, next %d, size %d; want %d records ending at %d", rec, s.Next(), s.Size(), c.bad, pos[c.bad])
				}
				repaired := readFile(t, fsys, path)
				if int64(len(repaired)) != corruptCapacity {
					t.Fatalf("repaired file is %d bytes, want %d", len(repaired), corruptCapacity)
				}
				if !bytes.Equal(repaired[:pos[c.bad]], damaged[:pos[c.bad]]) {
					t.Fatal("repair changed the valid prefix")
				}
				if !bytes.Equal(repaired[pos[c.bad]:], make([]byte, corruptCapacity-pos[c.bad])) {
					t.Fatal("the torn tail was not zeroed")
				}
				if c.clean {
					if rec.TornBytes != 0 || rec.TornOffset != 0 || rec.BrokenPath != "" || exists(fsys, path+".broken") {
						t.Fatalf("a clean end was treated as torn: %+v", rec)
					}
				} else {
					torn := trimZeros(damaged[pos[c.bad]:])
					if rec.TornOffset != pos[c.bad] || rec.TornBytes != int64(len(torn)) || rec.BrokenPath != path+".broken" {
						t.Fatalf("recovery %+v; want torn %d bytes at %d", rec, len(torn), pos[c.bad])
					}
					if broken := readFile(t, fsys, rec.BrokenPath); !bytes.Equal(broken, torn) {
						t.Fatalf(".broken holds %d bytes, want the %d torn bytes", len(broken), len(torn))
					}
				}

				// Appends continue where the valid prefix ends.
				mustAppend(t, s, want[c.bad:]...)
				mustClose(t, s)
				s, rec, err = segment.Open(fsys, path, segment.OpenOptions{})
				if err != nil {
					t.Fatal(err)
				}
				defer mustClose(t, s)
				if rec.Records != corruptRecords || rec.TornBytes != 0 {
					t.Fatalf("reopen after repair: %+v", rec)
				}
				checkRecords(t, readAll(t, s), want)
			})
		})
	}
}

func TestCorruptionSealed(t *testing.T) {
	for name, c := range corruptions {
		t.Run(name, func(t *testing.T) {
			forEachFS(t, func(t *testing.T, fsys vfs.FS, dir string) {
				path := filepath.Join(dir, "00000000000000000100.seg")
				pos := buildCorruptible(t, fsys, path, true)
				damaged := readFile(t, fsys, path)
				c.corrupt(damaged, pos)
				writeFile(t, fsys, path, damaged)

				s, _, err := segment.Open(fsys, path, segment.OpenOptions{})
				if c.headerErr != nil {
					if s != nil || !errors.Is(err, c.headerErr) {
						t.Fatalf("Open = %v, %v; want %v", s, err, c.headerErr)
					}
					if c.corruptionErr {
						checkCorruptionErr(t, err, path, 0, c.headerErr)
					}
					return
				}
				if err != nil {
					t.Fatalf("Open of a sealed segment scans it: %v", err)
				}
				defer mustClose(t, s)

				// Verify stops at the first bad record.
				var visited []collected
				n, err := s.Verify(func(p int64, r *segment.Record) { visited = append(visited, collected{p, copyRecord(r)}) })
				checkCorruptionErr(t, err, path, pos[c.bad], c.err)
				if n != c.bad {
					t.Fatalf("Verify counted %d good records, want %d", n, c.bad)
				}
				checkRecords(t, visited, makeRecords(corruptBase, c.bad))

				// So do the iterator and ReadRecord, which do not check
				// sequences.
				if c.err != segment.ErrSequence {
					it := s.Iter(segment.HeaderSize)
					i := 0
					for it.Next() {
						i++
					}
					if i != c.bad {
						t.Fatalf("iterator served %d records, want %d", i, c.bad)
					}
					checkCorruptionErr(t, it.Err(), path, pos[c.bad], c.err)
					if it.Next() {
						t.Fatal("iterator went on after an error")
					}
					rit := s.ReadIter(segment.HeaderSize, nil)
					i = 0
					for rit.Next() {
						i++
					}
					if i != c.bad {
						t.Fatalf("ReadIter served %d records, want %d", i, c.bad)
					}
					checkCorruptionErr(t, rit.Err(), path, pos[c.bad], c.err)
					_, _, err := s.ReadRecord(pos[c.bad])
					checkCorruptionErr(t, err, path, pos[c.bad], c.err)
				}
				if !bytes.Equal(readFile(t, fsys, path), damaged) || exists(fsys, path+".broken") {
					t.Fatal("a sealed segment was modified")
				}
			})
		})
	}
}

// TestOpenSealedBadLength opens sealed headers whose data length is
// impossible; the header CRC is valid, as after a software bug.
func TestOpenSealedBadLength(t *testing.T) {
	for name, length := range map[string]uint64{
		"below_header": segment.HeaderSize - 1,
		"past_eof":     1 << 20,
		"negative":     1 << 63,
		"max":          ^uint64(0),
	} {
		t.Run(name, func(t *testing.T) {
			fsys, dir := newMem(t)
			path := dir + "/a.seg"
			buildCorruptible(t, fsys, path, true)
			b := readFile(t, fsys, path)
			binary.LittleEndian.PutUint64(b[24:], length)
			setHeaderCRC(b)
			writeFile(t, fsys, path, b)
			s, _, err := segment.Open(fsys, path, segment.OpenOptions{})
			if s != nil {
				s.Close()
			}
			checkCorruptionErr(t, err, path, 0, segment.ErrBadHeader)
		})
	}
}
