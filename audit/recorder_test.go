package audit

import (
	"context"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// recorder is a driver.Conn that sends nothing: it records every statement the code under test
// sends, with its arguments bound into the text, so the statements can be replayed elsewhere (the
// chdb check). Reads answer with made-up values that steer the code down the path a fresh
// database takes: counts are 1 (so "is there anything to delete" goes on to the ALTER), except
// system.mutations (0: nothing pending), strings are empty, and the queries listed in rows answer
// with those rows.
type recorder struct {
	driver.Conn // nil: a method not overridden here panics, which shows a path the check misses
	stmts       []recorded
	// rows answers a Query whose text contains the key with these rows (one value per column).
	rows map[string][][]any
	// counts answers a QueryRow whose text contains the key with this count instead of 1.
	counts map[string]uint64
}

type recorded struct {
	Name string `json:"name"`
	SQL  string `json:"sql"`
}

func (r *recorder) add(query string, args []any) {
	r.stmts = append(r.stmts, recorded{Name: fmt.Sprintf("statement %d", len(r.stmts)+1), SQL: bindArgs(query, args)})
}

func (r *recorder) Exec(_ context.Context, query string, args ...any) error {
	r.add(query, args)
	return nil
}

func (r *recorder) Query(_ context.Context, query string, args ...any) (driver.Rows, error) {
	r.add(query, args)
	for key, rows := range r.rows {
		if strings.Contains(query, key) {
			return &recordedRows{rows: rows}, nil
		}
	}
	return &recordedRows{}, nil
}

func (r *recorder) QueryRow(_ context.Context, query string, args ...any) driver.Row {
	r.add(query, args)
	count := uint64(1)
	if strings.Contains(query, "system.mutations") {
		count = 0
	}
	for key, n := range r.counts {
		if strings.Contains(query, key) {
			count = n
		}
	}
	return recordedRow{count: count}
}

func (r *recorder) PrepareBatch(_ context.Context, query string, _ ...driver.PrepareBatchOption) (driver.Batch, error) {
	return &recordedBatch{rec: r, query: query}, nil
}

type recordedRow struct {
	driver.Row
	count uint64
}

func (r recordedRow) Err() error { return nil }

func (r recordedRow) Scan(dest ...any) error {
	for _, d := range dest {
		switch d := d.(type) {
		case *uint64:
			*d = r.count
		case *time.Time:
			*d = time.Now().UTC()
		}
	}
	return nil
}

type recordedRows struct {
	driver.Rows
	rows [][]any
	next int
}

func (r *recordedRows) Next() bool {
	r.next++
	return r.next <= len(r.rows)
}

func (r *recordedRows) Scan(dest ...any) error {
	row := r.rows[r.next-1]
	for i, d := range dest {
		if i < len(row) {
			reflect.ValueOf(d).Elem().Set(reflect.ValueOf(row[i]))
		}
	}
	return nil
}

func (r *recordedRows) Err() error   { return nil }
func (r *recordedRows) Close() error { return nil }

// recordedBatch turns a columnar batch into one INSERT ... SELECT ... UNION ALL SELECT statement:
// a form both 18.16 (where inline VALUES through Exec hangs) and today's servers accept.
type recordedBatch struct {
	driver.Batch
	rec     *recorder
	query   string
	columns [][]any
}

type recordedColumn struct {
	b *recordedBatch
	i int
}

func (b *recordedBatch) Column(i int) driver.BatchColumn { return recordedColumn{b, i} }

func (c recordedColumn) Append(v any) error {
	for len(c.b.columns) <= c.i {
		c.b.columns = append(c.b.columns, nil)
	}
	s := reflect.ValueOf(v)
	for j := 0; j < s.Len(); j++ {
		c.b.columns[c.i] = append(c.b.columns[c.i], s.Index(j).Interface())
	}
	return nil
}

func (c recordedColumn) AppendRow(v any) error { return c.Append([]any{v}) }

func (b *recordedBatch) Abort() error { return nil }

func (b *recordedBatch) Send() error {
	var selects []string
	for row := 0; len(b.columns) > 0 && row < len(b.columns[0]); row++ {
		vals := make([]string, len(b.columns))
		for col := range b.columns {
			vals[col] = literal(b.columns[col][row])
		}
		selects = append(selects, "SELECT "+strings.Join(vals, ", "))
	}
	b.rec.add(b.query+"\n"+strings.Join(selects, "\nUNION ALL "), nil)
	return nil
}

// bindArgs replaces each ? outside quotes with the next argument as a ClickHouse literal.
func bindArgs(query string, args []any) string {
	if len(args) == 0 {
		return query
	}
	var out strings.Builder
	var quote rune
	n := 0
	for _, c := range query {
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '`':
			quote = c
		case c == '?' && n < len(args):
			out.WriteString(literal(args[n]))
			n++
			continue
		}
		out.WriteRune(c)
	}
	return out.String()
}

// literal writes v as a typed ClickHouse literal (typed, so a UNION ALL of rows and an insert
// into a narrower column agree on every server version).
func literal(v any) string {
	switch v := v.(type) {
	case string:
		return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
	case []string:
		if len(v) == 0 {
			return "emptyArrayString()"
		}
		items := make([]string, len(v))
		for i, s := range v {
			items[i] = literal(s)
		}
		return "[" + strings.Join(items, ", ") + "]"
	case time.Time:
		return "toDateTime('" + v.UTC().Format(time.DateTime) + "', 'UTC')"
	case uint8:
		return "toUInt8(" + strconv.FormatUint(uint64(v), 10) + ")"
	case uint16:
		return "toUInt16(" + strconv.FormatUint(uint64(v), 10) + ")"
	case uint32:
		return "toUInt32(" + strconv.FormatUint(uint64(v), 10) + ")"
	case uint64:
		return "toUInt64(" + strconv.FormatUint(v, 10) + ")"
	case int:
		return strconv.Itoa(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case bool:
		if v {
			return "1"
		}
		return "0"
	}
	panic(fmt.Sprintf("recorder: no literal for %T", v))
}
