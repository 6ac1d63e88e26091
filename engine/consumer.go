package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/zombihq/zombi/vfs"
)

// consumerStore keeps committed consumer offsets, (group, table,
// partition) → offset, in one checkpoint file rewritten on each commit:
//
//	"ZCON" | count u32 | count × (group len u16 | group | table len u16 | table | partition u32 | offset u64) | crc32c
type consumerStore struct {
	mu   sync.Mutex
	fs   vfs.FS
	path string
	m    map[consumerKey]uint64
}

type consumerKey struct {
	group, table string
	partition    uint32
}

const consumerMagic = "ZCON"

// MaxGroupLen bounds a consumer group name.
const MaxGroupLen = 255

// ErrInvalidGroup is returned for an empty consumer group name or one
// longer than MaxGroupLen bytes.
var ErrInvalidGroup = errors.New("engine: invalid consumer group")

func (c *consumerStore) load(fsys vfs.FS, path string) error {
	c.fs, c.path, c.m = fsys, path, make(map[consumerKey]uint64)
	b, err := vfs.ReadFile(fsys, path)
	if isNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	body, err := unsealCheckpoint(b, consumerMagic)
	if err != nil || len(body) < 4 {
		return fmt.Errorf("%s: %w", path, errBadCheckpoint)
	}
	n := binary.LittleEndian.Uint32(body)
	body = body[4:]
	str := func() (string, bool) {
		if len(body) < 2 {
			return "", false
		}
		l := int(binary.LittleEndian.Uint16(body))
		if len(body) < 2+l {
			return "", false
		}
		s := string(body[2 : 2+l])
		body = body[2+l:]
		return s, true
	}
	for i := uint32(0); i < n; i++ {
		g, ok1 := str()
		t, ok2 := str()
		if !ok1 || !ok2 || len(body) < 12 {
			return fmt.Errorf("%s: %w", path, errBadCheckpoint)
		}
		k := consumerKey{g, t, binary.LittleEndian.Uint32(body)}
		c.m[k] = binary.LittleEndian.Uint64(body[4:])
		body = body[12:]
	}
	return nil
}

func (c *consumerStore) saveLocked() error {
	keys := make([]consumerKey, 0, len(c.m))
	for k := range c.m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.group != b.group {
			return a.group < b.group
		}
		if a.table != b.table {
			return a.table < b.table
		}
		return a.partition < b.partition
	})
	b := []byte(consumerMagic)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(keys)))
	for _, k := range keys {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(k.group)))
		b = append(b, k.group...)
		b = binary.LittleEndian.AppendUint16(b, uint16(len(k.table)))
		b = append(b, k.table...)
		b = binary.LittleEndian.AppendUint32(b, k.partition)
		b = binary.LittleEndian.AppendUint64(b, c.m[k])
	}
	return vfs.WriteAtomic(c.fs, c.path, sealCheckpoint(b))
}

// CommitOffset durably records that group has consumed (table, partition)
// up to offset.
func (e *Engine) CommitOffset(group, tname string, partition uint32, offset uint64) error {
	if group == "" || len(group) > MaxGroupLen {
		return fmt.Errorf("%w: must be 1 to %d bytes", ErrInvalidGroup, MaxGroupLen)
	}
	if !ValidTableName(tname) {
		return ErrInvalidTable
	}
	if partition >= e.opts.MaxPartitions {
		return fmt.Errorf("%w: %d", ErrInvalidPartition, partition)
	}
	c := &e.consumers
	c.mu.Lock()
	defer c.mu.Unlock()
	k := consumerKey{group, tname, partition}
	old, had := c.m[k]
	c.m[k] = offset
	if err := c.saveLocked(); err != nil {
		if had {
			c.m[k] = old
		} else {
			delete(c.m, k)
		}
		return fmt.Errorf("commit consumer offset: %w", err)
	}
	return nil
}

// ConsumerOffset returns the offset group committed for (table,
// partition), if any.
func (e *Engine) ConsumerOffset(group, tname string, partition uint32) (uint64, bool) {
	c := &e.consumers
	c.mu.Lock()
	defer c.mu.Unlock()
	off, ok := c.m[consumerKey{group, tname, partition}]
	return off, ok
}

// ConsumerOffset is one committed consumer offset.
type ConsumerOffset struct {
	Group     string
	Table     string
	Partition uint32
	Offset    uint64
}

// ConsumerOffsets returns every committed consumer offset, sorted by
// group, table and partition.
func (e *Engine) ConsumerOffsets() []ConsumerOffset {
	c := &e.consumers
	c.mu.Lock()
	out := make([]ConsumerOffset, 0, len(c.m))
	for k, off := range c.m {
		out = append(out, ConsumerOffset{k.group, k.table, k.partition, off})
	}
	c.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Group != b.Group {
			return a.Group < b.Group
		}
		if a.Table != b.Table {
			return a.Table < b.Table
		}
		return a.Partition < b.Partition
	})
	return out
}
