package audit

import (
	"context"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Schema version 6: where a consent choice came from (docs/consent.md "Consent signals from
// CMPs"). decisions and decisions_by_user gain consent_source (the sources that made the choice)
// and consent_proof (SHA-256 of the TC and GPP strings); rows from before keep ''.

// decisionsProvenance are the columns version 6 adds to decisions and decisions_by_user.
var decisionsProvenance = []column{
	{"consent_source", "String"},
	{"consent_proof", "String"},
}

// migrateConsentProvenance adds the columns where missing (ClickHouse 18.16 has no ADD COLUMN IF
// NOT EXISTS, so system.columns is checked first) and re-creates the view feeding
// decisions_by_user with them: a view keeps the column list it was created with. Every step
// checks or is idempotent, so an interrupted run is simply run again.
func migrateConsentProvenance(ctx context.Context, conn driver.Conn, database string) error {
	for _, table := range []string{"decisions", "decisions_by_user"} {
		have, err := tableColumns(ctx, conn, database, table)
		if err != nil {
			return err
		}
		for _, c := range decisionsProvenance {
			if hasColumn(have, c.name) {
				continue
			}
			if err := conn.Exec(ctx, `ALTER TABLE `+qualified(database, table)+` ADD COLUMN `+"`"+c.name+"` "+c.typ+` DEFAULT ''`); err != nil {
				return fmt.Errorf("add %s.%s: %w", table, c.name, err)
			}
		}
	}
	viewCols, err := tableColumns(ctx, conn, database, "decisions_by_user_mv")
	if err != nil {
		return err
	}
	if hasColumn(viewCols, "consent_proof") {
		return nil
	}
	if err := conn.Exec(ctx, `DROP TABLE IF EXISTS `+qualified(database, "decisions_by_user_mv")); err != nil {
		return fmt.Errorf("drop decisions_by_user_mv: %w", err)
	}
	if err := conn.Exec(ctx, `CREATE MATERIALIZED VIEW IF NOT EXISTS `+qualified(database, "decisions_by_user_mv")+` TO `+qualified(database, "decisions_by_user")+`
			AS SELECT `+columnNames(decisionsColumns)+` FROM `+qualified(database, "decisions")); err != nil {
		return fmt.Errorf("create decisions_by_user_mv: %w", err)
	}
	// A decision inserted while the view was being swapped reached decisions only; copy the
	// recent ones (a writer inserts within seconds of deciding). Copies collapse under FINAL.
	if err := conn.Exec(ctx, `INSERT INTO `+qualified(database, "decisions_by_user")+` (`+columnNames(decisionsColumns)+`)
			SELECT `+columnNames(decisionsColumns)+` FROM `+qualified(database, "decisions")+` WHERE decided_at >= now() - 3600`); err != nil {
		return fmt.Errorf("copy recent decisions to decisions_by_user: %w", err)
	}
	return nil
}

func hasColumn(cols []column, name string) bool {
	for _, c := range cols {
		if c.name == name {
			return true
		}
	}
	return false
}
