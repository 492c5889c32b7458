package audit

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/schemas"
)

// Version 6: a version-5 database keeps its decisions (consent_source and consent_proof empty),
// new decisions carry both into decisions and, through the re-created view, decisions_by_user
// (what `tollgate audit user` reads); a re-run changes nothing.
func TestMigrateVersion6ConsentProvenance(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openAtVersion(t, 5)
	old := testDecision(0)
	old.UserKey = "u-prov"
	insertDecisionsV5(t, db, old)

	require.NoError(t, db.Migrate(ctx))
	fresh := testDecision(3)
	fresh.UserKey, fresh.ConsentSource, fresh.ConsentProof = "u-prov", "event,tcf", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	require.NoError(t, db.InsertDecisions(ctx, []schemas.Decision{fresh}))

	check := func() {
		t.Helper()
		got, err := db.UserDecisions(ctx, "u-prov", 0)
		require.NoError(t, err)
		require.Len(t, got, 2)
		byEvent := map[string]UserDecision{}
		for _, d := range got {
			byEvent[d.EventID] = d
		}
		require.Equal(t, "", byEvent[old.EventID].ConsentSource)
		require.Equal(t, "", byEvent[old.EventID].ConsentProof)
		require.Equal(t, "event,tcf", byEvent[fresh.EventID].ConsentSource)
		require.Equal(t, fresh.ConsentProof, byEvent[fresh.EventID].ConsentProof)
	}
	check()
	require.NoError(t, upgrade(ctx, db, target{database: db.Database, shape: shapeClassic}, 6))
	check()
	require.NoError(t, db.Migrate(ctx))
	check()
}

// insertDecisionsV5 inserts decisions the way writers before schema version 6 did (no consent
// provenance), into a table of that version.
func insertDecisionsV5(t *testing.T, db *DB, ds ...schemas.Decision) {
	t.Helper()
	ctx := context.Background()
	batch, err := db.PrepareBatch(ctx, "INSERT INTO "+db.table("decisions")+" ("+columnNames(schemaAt(5).table("decisions").plainColumns())+")")
	require.NoError(t, err)
	for _, d := range ds {
		var gpc uint8
		if d.GPC {
			gpc = 1
		}
		require.NoError(t, batch.Append(d.DecisionID, d.EventID, d.UserKey, d.Destination, d.EventName,
			toDateTime(d.EventTimeMs), toDateTime(d.DecidedMs), d.Outcome, d.Reason, d.Purpose, d.Jurisdiction, gpc,
			nonNil(d.FieldsSent), nonNil(d.FieldsStripped), d.PolicyVersion, d.RunID))
	}
	require.NoError(t, batch.Send())
}
