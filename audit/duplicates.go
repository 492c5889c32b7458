package audit

import (
	"context"
	"fmt"
	"time"

	"github.com/tollgate-dev/tollgate/schemas"
)

// Schema version 5: the duplicates table, one row per (user_key, event_id) the consent processor
// absorbed resends of. The processor writes a record per absorbed resend, each with the running
// count, so the row with the most resends is the latest: ReplacingMergeTree(resends) keeps it
// under FINAL, and argMax(…, resends) reads it without FINAL.
var duplicatesColumns = []column{
	{"event_id", "String"},
	{"user_key", "String"},
	{"first_seen", "DateTime"},
	{"last_seen", "DateTime"},
	{"resends", "UInt32"},
}

func duplicatesDDL(database string) string {
	return `CREATE TABLE IF NOT EXISTS ` + qualified(database, "duplicates") + ` (` + columnDefs(duplicatesColumns) + `)
			ENGINE = ReplacingMergeTree(resends)
			PARTITION BY toYYYYMM(first_seen)
			ORDER BY (user_key, event_id)`
}

// InsertDuplicates writes absorbed resends to the duplicates table in one insert. Inserting a
// record again is harmless: copies collapse under FINAL.
func (db *DB) InsertDuplicates(ctx context.Context, ds []schemas.Duplicate) error {
	if len(ds) == 0 {
		return nil
	}
	batch, err := db.PrepareBatch(db.insertContext(ctx), "INSERT INTO "+db.table("duplicates")+" ("+columnNames(duplicatesColumns)+")")
	if err != nil {
		return fmt.Errorf("insert duplicates: %w", err)
	}
	defer batch.Abort() //nolint:errcheck // a no-op after Send
	var (
		n       = len(ds)
		eventID = make([]string, n)
		user    = make([]string, n)
		first   = make([]time.Time, n)
		last    = make([]time.Time, n)
		resends = make([]uint32, n)
	)
	for i := range ds {
		d := &ds[i]
		eventID[i], user[i] = d.EventID, d.UserKey
		first[i], last[i] = toDateTime(d.FirstSeenMs), toDateTime(d.LastSeenMs)
		resends[i] = clampUint32(int64(d.Resends))
	}
	for i, col := range []any{eventID, user, first, last, resends} {
		if err := batch.Column(i).Append(col); err != nil {
			return fmt.Errorf("insert duplicates: column %s: %w", duplicatesColumns[i].name, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert duplicates: %w", err)
	}
	return nil
}

// dropErased leaves out the resends of users erased before (see filterErased).
func dropErased(w *Writer, ds []schemas.Duplicate, src []source) ([]schemas.Duplicate, []source) {
	if len(w.erased) == 0 {
		return ds, src
	}
	var (
		out    = make([]schemas.Duplicate, 0, len(ds))
		outSrc = make([]source, 0, len(ds))
	)
	for i := range ds {
		if !w.isErased(ds[i].UserKey) {
			out, outSrc = append(out, ds[i]), append(outSrc, src[i])
		}
	}
	countDiscarded(discardErased, len(ds)-len(out))
	return out, outSrc
}
