package audit

import (
	"errors"

	chcolumn "github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/ClickHouse/clickhouse-go/v2/lib/proto"
)

// permanentCodes are the ClickHouse server error codes that say "these rows can never be
// inserted as they are": the server parsed the insert and refused its data or its shape. Sending
// the same rows again gets the same answer, however long the writer waits. (Codes from
// ClickHouse's src/Common/ErrorCodes.cpp; stable across versions.)
var permanentCodes = map[int32]string{
	6:   "CANNOT_PARSE_TEXT",
	8:   "THERE_IS_NO_COLUMN",
	9:   "SIZES_OF_COLUMNS_DOESNT_MATCH",
	10:  "NOT_FOUND_COLUMN_IN_BLOCK",
	16:  "NO_SUCH_COLUMN_IN_TABLE",
	20:  "NUMBER_OF_COLUMNS_DOESNT_MATCH",
	26:  "CANNOT_PARSE_QUOTED_STRING",
	27:  "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
	38:  "CANNOT_PARSE_DATE",
	41:  "CANNOT_PARSE_DATETIME",
	43:  "ILLEGAL_TYPE_OF_ARGUMENT",
	44:  "ILLEGAL_COLUMN",
	47:  "UNKNOWN_IDENTIFIER",
	53:  "TYPE_MISMATCH",
	62:  "SYNTAX_ERROR",
	69:  "ARGUMENT_OUT_OF_BOUND",
	70:  "CANNOT_CONVERT_TYPE",
	72:  "CANNOT_PARSE_NUMBER",
	117: "INCORRECT_DATA",
	128: "TOO_LARGE_ARRAY_SIZE",
	131: "TOO_LARGE_STRING_SIZE",
	321: "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
	395: "FUNCTION_THROW_IF_VALUE_IS_NON_ZERO", // a check on the table (a throwIf column) refused a row
	469: "VIOLATED_CONSTRAINT",
}

// permanent is the one rule that tells a ClickHouse error retrying cannot fix from one it can.
// The writer parks rows that fail permanently (see park.go) and retries everything else with
// backoff, forever: an audit row must not be given up because ClickHouse was unwell.
//
// Permanent: the server's refusal of the data itself (the codes above: parse and type errors,
// values out of range, strings or arrays too large, a column or table check) and the driver's own
// refusal to convert a Go value for a column (ColumnConverterError, Error of its column package), which
// happens before anything is sent.
//
// Transient: everything else, on purpose including errors not seen before. Network errors,
// timeouts, connection refused, a server restarting, TOO_MANY_PARTS (252), MEMORY_LIMIT_EXCEEDED
// (241), TABLE_IS_READ_ONLY (242, a replica that lost ZooKeeper), TOO_MANY_SIMULTANEOUS_QUERIES
// (202), a missing database or table (81, 60: an operator's outage; the writer's migrations
// recreate them at its next start) all pass with time or an operator's fix, and parking would move
// the whole audit trail into a side topic meanwhile. An unknown error stays retried, as before
// this rule existed: guessing "permanent" would drop rows from the tables for good.
func permanent(err error) bool {
	var exc *proto.Exception
	if errors.As(err, &exc) {
		_, ok := permanentCodes[exc.Code]
		return ok
	}
	var conv *chcolumn.ColumnConverterError
	var colErr *chcolumn.Error
	return errors.As(err, &conv) || errors.As(err, &colErr)
}
