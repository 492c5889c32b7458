package audit

import (
	"context"
	"fmt"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Schema version 4: one deliveries row per real request.
//
// Up to version 3 the deliveries table was a ReplacingMergeTree ordered by (destination,
// event_id, attempt, status), so two real requests carrying the same event with the same attempt
// number (a client resend before dedup, a sink killed between the vendor's answer and its offset
// commit) collapsed into one row: the audit said the vendor received less than it did. Version 4
// adds delivery_id, unique per attempt and carried by the audit record, to the sorting key: two
// requests are two rows under FINAL, while the same audit record inserted twice (a writer
// restart) is still one. deliveries_daily counts distinct (event_id, attempt, delivery_id) for
// the same reason. Rows from before version 4 have an empty delivery_id and keep their old
// meaning.

func v4DeliveriesDDL(database, name string) string {
	return `CREATE TABLE IF NOT EXISTS ` + qualified(database, name) + ` (` + columnDefs(deliveriesColumns) + `)
			ENGINE = ReplacingMergeTree()
			PARTITION BY toDate(at)
			ORDER BY (destination, event_id, attempt, status, delivery_id)`
}

func v4DailyDDL(database, name string) string {
	return `CREATE TABLE IF NOT EXISTS ` + qualified(database, name) + ` (
			day Date, destination String, status String,
			attempts AggregateFunction(uniqExact, String, UInt16, String))
			ENGINE = AggregatingMergeTree()
			PARTITION BY toYYYYMM(day)
			ORDER BY (day, destination, status)`
}

func v4DailyView(database string) string {
	return `CREATE MATERIALIZED VIEW IF NOT EXISTS ` + qualified(database, "deliveries_daily_mv") + ` TO ` + qualified(database, "deliveries_daily") + `
			AS SELECT toDate(at) AS day, destination, status, uniqExactState(event_id, attempt, delivery_id) AS attempts
			FROM ` + qualified(database, "deliveries") + ` GROUP BY day, destination, status`
}

// migrateDeliveryIDs swaps in the version-4 deliveries and deliveries_daily tables and copies the
// old rows. Every step checks what is done, so an interrupted run is simply run again; a row
// copied twice collapses (same key, empty delivery_id) and uniqExact counts it once.
func migrateDeliveryIDs(ctx context.Context, conn driver.Conn, database string) error {
	// The view feeds deliveries_daily from deliveries; drop it before either is swapped.
	if err := conn.Exec(ctx, `DROP TABLE IF EXISTS `+qualified(database, "deliveries_daily_mv")); err != nil {
		return fmt.Errorf("drop deliveries_daily_mv: %w", err)
	}
	key, err := sortingKey(ctx, conn, database, "deliveries")
	if err != nil {
		return err
	}
	if !strings.Contains(key, "delivery_id") {
		if err := swapIn(ctx, conn, database, "deliveries", v4DeliveriesDDL(database, "deliveries_v4")); err != nil {
			return err
		}
	}
	var dailyType string
	if err := conn.QueryRow(ctx, `SELECT type FROM system.columns WHERE database = ? AND table = 'deliveries_daily' AND name = 'attempts'`, database).Scan(&dailyType); err != nil {
		return fmt.Errorf("read deliveries_daily.attempts: %w", err)
	}
	if !strings.Contains(dailyType, "UInt16, String") {
		if err := swapIn(ctx, conn, database, "deliveries_daily", v4DailyDDL(database, "deliveries_daily_v4")); err != nil {
			return err
		}
	}
	if err := conn.Exec(ctx, v4DailyView(database)); err != nil {
		return fmt.Errorf("create deliveries_daily_mv: %w", err)
	}
	// The summary is rebuilt from the rows, through the view, as the old rows are copied.
	if exists, err := tableExists(ctx, conn, database, "deliveries_v3"); err != nil {
		return err
	} else if exists {
		if err := conn.Exec(ctx, `INSERT INTO `+qualified(database, "deliveries")+` (`+columnNames(deliveriesColumnsV3)+`)
			SELECT `+columnNames(deliveriesColumnsV3)+` FROM `+qualified(database, "deliveries_v3")); err != nil {
			return fmt.Errorf("copy deliveries to version 4: %w", err)
		}
	}
	for _, old := range []string{"deliveries_v3", "deliveries_daily_v3"} {
		if err := conn.Exec(ctx, `DROP TABLE IF EXISTS `+qualified(database, old)); err != nil {
			return fmt.Errorf("drop %s: %w", old, err)
		}
	}
	return nil
}

// swapIn creates the new table (ddl names it <table>_v4) and renames it into place, keeping the
// old one as <table>_v3 until its rows are copied.
func swapIn(ctx context.Context, conn driver.Conn, database, table, ddl string) error {
	if err := conn.Exec(ctx, ddl); err != nil {
		return fmt.Errorf("create %s_v4: %w", table, err)
	}
	if err := conn.Exec(ctx, `RENAME TABLE `+qualified(database, table)+` TO `+qualified(database, table+"_v3")+`, `+
		qualified(database, table+"_v4")+` TO `+qualified(database, table)); err != nil {
		return fmt.Errorf("swap in %s version 4: %w", table, err)
	}
	return nil
}

func sortingKey(ctx context.Context, conn driver.Conn, database, table string) (string, error) {
	var key string
	if err := conn.QueryRow(ctx, `SELECT sorting_key FROM system.tables WHERE database = ? AND name = ?`, database, table).Scan(&key); err != nil {
		return "", fmt.Errorf("read sorting key of %s: %w", table, err)
	}
	return key, nil
}
