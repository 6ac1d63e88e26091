package peer

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/zombihq/zombi/segment"
	"github.com/zombihq/zombi/vfs"
)

// segWriter is one way to write a log of segment files: the chosen design
// and the alternatives the segment package doc weighs it against. All of
// them write the same bytes (segment.AppendRecord framing, CRC included),
// roll to a new 64 MiB file when full, and make the new file and its
// directory entry durable before writing to it, as segment.Create does.
type segWriter interface {
	append(r *segment.Record) error
	sync() error
	close() error
}

const segBenchCapacity = 64 << 20

// segWriterChosen is the chosen design: segment.Create (fallocate, a
// read-only mapping for readers) and Segment.Append into its user buffer,
// written with one pwrite by Flush every flushEvery records — 1 is what a
// lone appender costs the engine (it flushes before acking), 100 what a
// batch or a group of concurrent appends costs.
type segWriterChosen struct {
	dir        string
	flushEvery uint64
	s          *segment.Segment
}

func (w *segWriterChosen) append(r *segment.Record) error {
	if w.s == nil || !w.s.Fits(r.EncodedLen()) {
		if w.s != nil {
			if err := w.s.Close(); err != nil {
				return err
			}
		}
		s, err := segment.Create(vfs.Default, filepath.Join(w.dir, fmt.Sprintf("%020d.seg", r.Seq)), r.Seq, segBenchCapacity, 0)
		if err != nil {
			return err
		}
		w.s = s
	}
	if _, err := w.s.Append(*r); err != nil {
		return err
	}
	if r.Seq%w.flushEvery == 0 {
		return w.s.Flush()
	}
	return nil
}

func (w *segWriterChosen) sync() error { return w.s.Sync() }
func (w *segWriterChosen) close() error {
	if w.s == nil {
		return nil
	}
	return w.s.Close()
}

// mmapWriter is the design segment/ used first: records stored straight
// into a shared writable mapping of a fallocate'd file advised
// MADV_RANDOM (no syscall per append; every first store to a page faults).
type mmapWriter struct {
	dir     string
	f       *os.File
	mm      []byte
	pos     int
	scratch []byte
}

func (w *mmapWriter) append(r *segment.Record) error {
	n := r.EncodedLen()
	if w.f == nil || w.pos+n > len(w.mm) {
		if err := w.close(); err != nil {
			return err
		}
		f, err := createSegFile(w.dir, r.Seq, true)
		if err != nil {
			return err
		}
		mm, err := unix.Mmap(int(f.Fd()), 0, segBenchCapacity, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		if err != nil {
			f.Close()
			return err
		}
		_ = unix.Madvise(mm, unix.MADV_RANDOM)
		w.f, w.mm, w.pos = f, mm, segment.HeaderSize
	}
	w.scratch = segment.AppendRecord(w.scratch[:0], r)
	w.pos += copy(w.mm[w.pos:], w.scratch)
	return nil
}

func (w *mmapWriter) sync() error { return unix.Fdatasync(int(w.f.Fd())) }
func (w *mmapWriter) close() error {
	if w.f == nil {
		return nil
	}
	err := unix.Munmap(w.mm)
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	w.f, w.mm = nil, nil
	return err
}

// createSegFile creates a segment-sized file (fallocate'd if prealloc),
// writes a header and makes file and directory entry durable, as
// segment.Create does.
func createSegFile(dir string, seq uint64, prealloc bool) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("%020d.seg", seq)), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*os.File, error) { f.Close(); return nil, err }
	if prealloc {
		if err := unix.Fallocate(int(f.Fd()), 0, 0, segBenchCapacity); err != nil {
			return fail(err)
		}
	}
	var hdr [segment.HeaderSize]byte
	copy(hdr[:], segment.Magic)
	if _, err := f.WriteAt(hdr[:], 0); err != nil {
		return fail(err)
	}
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		return fail(err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fail(err)
	}
	err = d.Sync()
	d.Close()
	if err != nil {
		return fail(err)
	}
	return f, nil
}

// fileWriter is the two alternatives: pwrite(2) of each encoded record
// into a fallocate'd file (buf == nil), or a user-space buffer of 64 KiB
// flushed with write(2) into a growing file, as most WALs do.
type fileWriter struct {
	dir      string
	prealloc bool
	f        *os.File
	pos      int64
	bw       *bufio.Writer
	scratch  []byte
}

func (w *fileWriter) roll(seq uint64) error {
	if err := w.close(); err != nil {
		return err
	}
	f, err := createSegFile(w.dir, seq, w.prealloc)
	if err != nil {
		return err
	}
	w.f, w.pos = f, segment.HeaderSize
	if !w.prealloc {
		if _, err := f.Seek(w.pos, 0); err != nil {
			return err
		}
		if w.bw == nil {
			w.bw = bufio.NewWriterSize(f, 64<<10)
		} else {
			w.bw.Reset(f)
		}
	}
	return nil
}

func (w *fileWriter) append(r *segment.Record) error {
	n := int64(r.EncodedLen())
	if w.f == nil || w.pos+n > segBenchCapacity {
		if err := w.roll(r.Seq); err != nil {
			return err
		}
	}
	w.scratch = segment.AppendRecord(w.scratch[:0], r)
	var err error
	if w.prealloc {
		_, err = w.f.WriteAt(w.scratch, w.pos)
	} else {
		_, err = w.bw.Write(w.scratch)
	}
	w.pos += n
	return err
}

func (w *fileWriter) sync() error {
	if w.bw != nil {
		if err := w.bw.Flush(); err != nil {
			return err
		}
	}
	return unix.Fdatasync(int(w.f.Fd()))
}

func (w *fileWriter) close() error {
	if w.f == nil {
		return nil
	}
	var err error
	if w.bw != nil {
		err = w.bw.Flush()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	w.f = nil
	return err
}

// BenchmarkSegmentAppend compares ways of appending records to segment
// files (see segWriter): the chosen design (segment package: user buffer,
// one pwrite per Flush, every record or every 100), stores into a
// writable mmap, pwrite per record into a fallocate'd file (no segment
// package), and a 64 KiB user buffer written into a growing file. sync=0 never syncs during
// the run (the "never" mode); sync=100 makes every 100th record durable
// with fdatasync, as group commit would. One op is one record; wbytes/B is
// /proc/self/io write_bytes per payload byte, a final sync(2) included.
func BenchmarkSegmentAppend(b *testing.B) {
	designs := []struct {
		name string
		new  func(dir string) segWriter
	}{
		{"segment-flush1", func(dir string) segWriter { return &segWriterChosen{dir: dir, flushEvery: 1} }},
		{"segment-flush100", func(dir string) segWriter { return &segWriterChosen{dir: dir, flushEvery: 100} }},
		{"mmap", func(dir string) segWriter { return &mmapWriter{dir: dir} }},
		{"pwrite", func(dir string) segWriter { return &fileWriter{dir: dir, prealloc: true} }},
		{"buffered64k", func(dir string) segWriter { return &fileWriter{dir: dir} }},
	}
	for _, size := range []int{82, 1024} {
		for _, every := range []int{0, 100} {
			for _, d := range designs {
				b.Run(fmt.Sprintf("%s/%s/sync=%d", sizeName(size), d.name, every), func(b *testing.B) {
					dir := benchDir(b)
					iow := startIO(dir)
					w := d.new(dir)
					payloads := Payloads(64, size, 1)
					b.SetBytes(int64(size))
					b.ReportAllocs()
					seq := uint64(1)
					for b.Loop() {
						r := segment.Record{Seq: seq, TimestampMs: 1_700_000_000_000, Payload: payloads[seq&63]}
						if err := w.append(&r); err != nil {
							b.Fatal(err)
						}
						if every > 0 && seq%uint64(every) == 0 {
							if err := w.sync(); err != nil {
								b.Fatal(err)
							}
						}
						seq++
					}
					b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
					if err := w.sync(); err != nil {
						b.Fatal(err)
					}
					if err := w.close(); err != nil {
						b.Fatal(err)
					}
					iow.report(b, int64(b.N*size))
				})
			}
		}
	}
}
