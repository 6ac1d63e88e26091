package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"

	"github.com/zombihq/zombi/vfs"
)

// Checkpoint files are small and rewritten whole: write a temp file, fsync
// it, rename it over the old one, fsync the directory. Each one starts
// with a 4-byte magic and ends with a CRC-32C of everything before it.

var crcTable = crc32.MakeTable(crc32.Castagnoli)

var errBadCheckpoint = errors.New("engine: damaged checkpoint file")

// seal appends the CRC; unseal checks magic and CRC and returns the body.
func sealCheckpoint(b []byte) []byte {
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
}

func unsealCheckpoint(b []byte, magic string) ([]byte, error) {
	if len(b) < len(magic)+4 || string(b[:len(magic)]) != magic {
		return nil, errBadCheckpoint
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, crcTable) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return nil, errBadCheckpoint
	}
	return body[len(magic):], nil
}

// partState is the durable state of one partition log, in its dir as
// "state":
//
//	"ZPST" | flushed u64 | lease u64 | boot id len u8 | boot id | crc32c
//
// flushed is the last sequence committed to the cold tier. lease is a
// sequence no record has reached yet: every assigned sequence is below it.
// bootID is the machine boot during which lease was written.
type partState struct {
	flushed uint64
	lease   uint64
	bootID  string
}

const partStateMagic = "ZPST"

func (s *partState) marshal() []byte {
	b := []byte(partStateMagic)
	b = binary.LittleEndian.AppendUint64(b, s.flushed)
	b = binary.LittleEndian.AppendUint64(b, s.lease)
	id := s.bootID
	if len(id) > 255 {
		id = id[:255]
	}
	b = append(b, byte(len(id)))
	b = append(b, id...)
	return sealCheckpoint(b)
}

func (s *partState) unmarshal(b []byte) error {
	body, err := unsealCheckpoint(b, partStateMagic)
	if err != nil {
		return err
	}
	if len(body) < 17 || len(body) != 17+int(body[16]) {
		return errBadCheckpoint
	}
	s.flushed = binary.LittleEndian.Uint64(body)
	s.lease = binary.LittleEndian.Uint64(body[8:])
	s.bootID = string(body[17:])
	return nil
}

func readBootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

func loadPartState(fsys vfs.FS, dir string) (partState, bool, error) {
	var st partState
	b, err := vfs.ReadFile(fsys, filepath.Join(dir, "state"))
	if errors.Is(err, os.ErrNotExist) {
		return st, false, nil
	}
	if err != nil {
		return st, false, err
	}
	if err := st.unmarshal(b); err != nil {
		return st, false, fmt.Errorf("%s: %w", filepath.Join(dir, "state"), err)
	}
	return st, true, nil
}
