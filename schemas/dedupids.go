package schemas

import (
	_ "embed"
	"encoding/binary"
	"fmt"
)

//go:embed dedup_ids.avsc
var dedupIDsSchema string

// DedupIDs is one transaction's remembered event ids on one partition, packed
// (schemas/dedup_ids.avsc): the dedup changelog carries one of these per transaction and partition
// rather than a Duplicate per event, so remembering an id costs 24 bytes of a record, not a record.
type DedupIDs struct {
	IDs     []byte `avro:"ids"`
	Resends []byte `avro:"resends"`
}

// DedupIDsCodec reads and writes DedupIDs.
var DedupIDsCodec = newCodec[DedupIDs](dedupIDsSchema)

// Sizes of one packed entry of DedupIDs.
const (
	DedupIDSize     = 16 + 8
	DedupResendSize = 16 + 8 + 8 + 4
)

// DedupEntry is one remembered id of a DedupIDs: a first sighting has Resends 0 and LastMs equal to
// FirstMs.
type DedupEntry struct {
	ID              [16]byte
	FirstMs, LastMs int64
	Resends         uint32
}

// Add packs e: as a first sighting when it is one, else as a resend.
func (d *DedupIDs) Add(e DedupEntry) {
	if e.Resends == 0 && e.LastMs == e.FirstMs {
		d.IDs = append(d.IDs, e.ID[:]...)
		d.IDs = binary.BigEndian.AppendUint64(d.IDs, uint64(e.FirstMs))
		return
	}
	d.Resends = append(d.Resends, e.ID[:]...)
	d.Resends = binary.BigEndian.AppendUint64(d.Resends, uint64(e.FirstMs))
	d.Resends = binary.BigEndian.AppendUint64(d.Resends, uint64(e.LastMs))
	d.Resends = binary.BigEndian.AppendUint32(d.Resends, e.Resends)
}

// Len is the number of entries packed.
func (d *DedupIDs) Len() int { return len(d.IDs)/DedupIDSize + len(d.Resends)/DedupResendSize }

// Each calls fn with every entry, first sightings first. A record whose lists are not whole
// entries (a foreign or damaged record) yields an error before fn is called at all.
func (d *DedupIDs) Each(fn func(DedupEntry)) error {
	if len(d.IDs)%DedupIDSize != 0 || len(d.Resends)%DedupResendSize != 0 {
		return fmt.Errorf("dedup ids: %d and %d bytes are not whole entries", len(d.IDs), len(d.Resends))
	}
	var e DedupEntry
	for b := d.IDs; len(b) > 0; b = b[DedupIDSize:] {
		copy(e.ID[:], b)
		e.FirstMs = int64(binary.BigEndian.Uint64(b[16:]))
		e.LastMs, e.Resends = e.FirstMs, 0
		fn(e)
	}
	for b := d.Resends; len(b) > 0; b = b[DedupResendSize:] {
		copy(e.ID[:], b)
		e.FirstMs = int64(binary.BigEndian.Uint64(b[16:]))
		e.LastMs = int64(binary.BigEndian.Uint64(b[24:]))
		e.Resends = binary.BigEndian.Uint32(b[32:])
		fn(e)
	}
	return nil
}
