// Package audit is the audit writer: it consumes <prefix>audit.decisions,
// <prefix>audit.deliveries and the erasures of <prefix>consent.state and batches them into the
// ClickHouse tables documented in docs/audit.md, committing Kafka offsets only after an insert
// succeeded. Rows ClickHouse refuses for good are parked in <prefix>audit.parked. It also owns
// the tables' migrations, retention and erasure, and the read queries the CLI prints.
//
// API: one style throughout. Open returns a *DB; everything done to the audit database is a
// method of *DB with the context first (db.Migrate(ctx), db.InsertDecisions(ctx, ds),
// db.Summary(ctx), db.UserReport(ctx, userKey, limit), db.EraseUser(ctx, userKey), …), and
// every query returns data: printing it is the command line's business (cmd/tollgate). New
// returns the Writer, whose Run is the consumer loop.
//
// File map: conn.go (connecting, the DB handle), schema.go (the schema as one model, per
// version), schema_render.go (its classic, modern and cluster shapes), migrate.go and
// migrate_upgrade.go (a database brought to the newest version), insert.go (batch inserts,
// Avro record -> row), writer.go (the Kafka consumer loop), classify.go (permanent vs transient
// ClickHouse errors), park.go (parking refused rows), metrics.go, erased.go (late decisions of
// erased users), erase.go (erasure), retention.go and retention_job.go (retention;
// retention_ttl.go in the modern shape), read.go, read_report.go and read_access.go (the read
// side). README.md lists the tests; docs/audit.md has the tables and example queries.
//
// Protocol: the native protocol through clickhouse-go v2. It works against the oldest server we
// support (Debian's 18.16.1, protocol revision 54412): the handshake, SELECTs, FINAL, and batch
// inserts with an explicit column list of String, Array(String), DateTime and UInt8/16/32 were
// all checked against it (the tests run against it too). Three 18.16 quirks shape the code:
//   - an INSERT with inline VALUES sent through Exec hangs until the read timeout (the server
//     waits for data blocks the driver never sends): write rows with PrepareBatch, or use
//     INSERT ... SELECT;
//   - query settings travel as integers on revisions before 54429, so only int/bool settings may
//     be sent;
//   - newer settings do not exist there, so they are sent only when system.settings lists them
//     (see DB.insertSettings).
package audit

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tollgate-dev/tollgate/internal/config"
)

// DB is a connection pool to ClickHouse plus the audit database's name. It embeds the driver's
// connection, so it can be passed wherever a driver.Conn is asked for (the query functions).
type DB struct {
	driver.Conn
	// Database holds the audit tables; a plain identifier (checked by Open).
	Database string
	// Cluster is clickhouse.cluster: empty for a single server, else the name ON CLUSTER
	// statements and Replicated* engines are made for (checked by Open).
	Cluster string
	// Version is the server's version as it reported it at connect ("18.16.1").
	Version string

	// shape caches the audit database's shape (shapeClassic, shapeModern, shapeCluster; migrate.go); read
	// and written with sync/atomic (a plain int32 so tests may copy a DB).
	shape int32

	// insertSettings are sent with every insert; only settings the server knows.
	insertSettings clickhouse.Settings
}

// identifier is what Open accepts as a database name: it is spliced into SQL (quoted), so it is
// kept to the characters that never need escaping.
var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Open connects over the native protocol to cfg.ClickHouse.Addr as cfg.ClickHouse.Username (the
// password is read from the variable named by PasswordEnv), checks that the server answers, and
// detects the settings it supports. It does not create the database: call Migrate.
//
// Addr is one address or the replicas of a shard, comma-separated and tried in order: a
// connection that breaks is replaced by one to the first replica that answers, so the writer's
// retry of a failed insert moves on when a replica goes away.
//
// The connection's default database is left to the server (the audit database may not exist
// yet); every statement of this package names its tables with the database.
func Open(ctx context.Context, cfg *config.Config) (*DB, error) {
	ch := cfg.ClickHouse
	if !identifier.MatchString(ch.Database) {
		return nil, fmt.Errorf("clickhouse.database %q: use letters, digits and _ only", ch.Database)
	}
	if ch.Cluster != "" && !identifier.MatchString(ch.Cluster) {
		return nil, fmt.Errorf("clickhouse.cluster %q: use letters, digits and _ only", ch.Cluster)
	}
	var password string
	if ch.PasswordEnv != "" {
		password = os.Getenv(ch.PasswordEnv)
	}
	tlsConf, err := ch.TLS.Config()
	if err != nil {
		return nil, fmt.Errorf("clickhouse.tls: %w", err)
	}
	conn, err := clickhouse.Open(&clickhouse.Options{
		TLS:  tlsConf, // nil: plaintext
		Addr: ch.Addrs(),
		// In order: every process prefers the first replica, so a writer reads what it wrote
		// unless that replica is gone (docs/audit.md "Replicated ClickHouse").
		ConnOpenStrategy: clickhouse.ConnOpenInOrder,
		Auth:             clickhouse.Auth{Username: ch.Username, Password: password},
		DialTimeout:      5 * time.Second,
		// Generous: a FINAL over a large table can take a while, an insert of a full batch too.
		ReadTimeout:  2 * time.Minute,
		MaxOpenConns: 4,
		MaxIdleConns: 2,
		// LZ4 block compression is as old as the native protocol; it cuts an audit batch (many
		// repeated strings) several times over at little CPU cost.
		Compression: &clickhouse.Compression{Method: clickhouse.CompressionLZ4},
	})
	if err != nil {
		return nil, fmt.Errorf("clickhouse %s: %w", ch.Addr, err)
	}
	db := &DB{Conn: conn, Database: ch.Database, Cluster: ch.Cluster}
	if err := db.init(ctx); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("clickhouse %s: %w", ch.Addr, err)
	}
	return db, nil
}

func (db *DB) init(ctx context.Context) error {
	if err := db.Ping(ctx); err != nil {
		return err
	}
	if err := db.QueryRow(ctx, "SELECT version()").Scan(&db.Version); err != nil {
		return fmt.Errorf("server version: %w", err)
	}
	// Newer servers (19.x on) refuse an insert block spanning more than 100 partitions. Audit
	// rows are partitioned by month of the event's own time, which the sending client chooses: a
	// batch of events with scattered timestamps must not stall the writer on a permanent error.
	// 18.16 has no such limit and rejects the unknown setting, hence the lookup.
	var n uint64
	if err := db.QueryRow(ctx, "SELECT count() FROM system.settings WHERE name = 'max_partitions_per_insert_block'").Scan(&n); err != nil {
		return fmt.Errorf("read settings: %w", err)
	}
	if n > 0 {
		db.insertSettings = clickhouse.Settings{"max_partitions_per_insert_block": 0}
	}
	return nil
}

// table returns the quoted name of a table of the audit database.
func (db *DB) table(name string) string { return qualified(db.Database, name) }

// qualified quotes database.table. database must have passed the identifier check.
func qualified(database, table string) string { return "`" + database + "`.`" + table + "`" }

func checkDatabase(database string) error {
	if !identifier.MatchString(database) {
		return fmt.Errorf("database name %q: use letters, digits and _ only", database)
	}
	return nil
}
