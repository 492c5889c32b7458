package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/schemas"
)

// Late decisions of erased users.
//
// The decisions, deliveries and consent-state topics are read in parallel, possibly by several
// writers, so a decision made before a user's erasure can reach ClickHouse after the erasure
// deleted the user's rows (a lagging partition, a writer catching up after an outage). Two
// checks keep such rows out:
//
//   - before an insert, decisions of users on the erasure list are dropped, unless their reason
//     is "erased" (made after the erasure: the evidence that enforcement held);
//   - after the insert, the list is read again; a user of the batch who was erased meanwhile is
//     erased again. This closes the race with a concurrent EraseUser, which writes the list
//     before deleting: if our re-read does not see the erasure, our insert finished before it was
//     listed, hence before its delete started, and that delete covers our rows.
//
// The list is the erasures table (hashes), read incrementally: each read fetches the entries
// listed since the previous read's server time minus erasedOverlap, which covers an insert that
// took its erased_at just before that read and became visible just after it.

const erasedOverlap = 5 * time.Minute

// refreshErased adds the erasures listed since the last read to w.erased and reports whether it
// found new ones.
func (w *Writer) refreshErased(ctx context.Context) error {
	_, err := w.readErased(ctx)
	return err
}

func (w *Writer) readErased(ctx context.Context) (added int, err error) {
	since := w.erasedSince.Add(-erasedOverlap)
	if w.erasedSince.IsZero() {
		since = time.Unix(0, 0)
	}
	hashes, now, err := w.db.ErasedSince(ctx, since)
	if err != nil {
		return 0, err
	}
	for _, h := range hashes {
		var k [32]byte
		if _, err := hex.Decode(k[:], []byte(h)); err != nil || len(h) != 64 {
			continue
		}
		if _, ok := w.erased[k]; !ok {
			w.erased[k] = struct{}{}
			added++
		}
	}
	w.erasedSince = now
	return added, nil
}

// filterErased returns the decisions to insert, with their sources: all of ds but those of
// erased users made before the erasure. It reuses ds's and src's arrays only when nothing is
// dropped.
func (w *Writer) filterErased(ds []schemas.Decision, src []source) ([]schemas.Decision, []source) {
	if len(w.erased) == 0 {
		return ds, src
	}
	var (
		out    []schemas.Decision
		outSrc []source
	)
	dropped := 0
	for i := range ds {
		if ds[i].Reason != "erased" && w.isErased(ds[i].UserKey) {
			if out == nil {
				out = append(make([]schemas.Decision, 0, len(ds)), ds[:i]...)
				outSrc = append(make([]source, 0, len(ds)), src[:i]...)
			}
			dropped++
			continue
		}
		if out != nil {
			out = append(out, ds[i])
			outSrc = append(outSrc, src[i])
		}
	}
	if dropped == 0 {
		return ds, src
	}
	w.log.Info("dropped decisions of erased users", zap.Int("decisions", dropped))
	return out, outSrc
}

func (w *Writer) isErased(userKey string) bool {
	_, ok := w.erased[sha256.Sum256([]byte(userKey))]
	return ok
}

// eraseLateArrivals re-reads the erasure list after an insert and erases again the users of the
// inserted batch who were listed meanwhile.
func (w *Writer) eraseLateArrivals(ctx context.Context, inserted []schemas.Decision) error {
	added, err := w.readErased(ctx)
	if err != nil || added == 0 {
		return err
	}
	done := map[string]bool{}
	for i := range inserted {
		user := inserted[i].UserKey
		if done[user] || inserted[i].Reason == "erased" || !w.isErased(user) {
			continue
		}
		done[user] = true
		if err := w.db.EraseUser(ctx, user); err != nil {
			return err
		}
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
