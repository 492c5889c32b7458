package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

// Report output: aligned tables for people, JSON or CSV for tools (--format).

const (
	formatTable = "table"
	formatJSON  = "json"
	formatCSV   = "csv"
)

func formatFlag(cmd *cobra.Command) *string {
	return cmd.Flags().String("format", formatTable, "output format: table, json or csv")
}

func checkFormat(f string) error {
	switch f {
	case formatTable, formatJSON, formatCSV:
		return nil
	}
	return usageError{fmt.Errorf("--format %q: use table, json or csv", f)}
}

// table is a header and rows of cells.
type table struct {
	header []string
	rows   [][]string
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

// writeText pads every column to its widest cell, two spaces apart, under an upper-case header;
// a column whose cells are all numbers is right-aligned.
func (t *table) writeText(w io.Writer) error {
	header := make([]string, len(t.header))
	for i, h := range t.header {
		header[i] = strings.ToUpper(h)
	}
	lines := append([][]string{header}, t.rows...)
	width := make([]int, len(t.header))
	numeric := make([]bool, len(t.header))
	for i := range numeric {
		numeric[i] = len(t.rows) > 0
	}
	for li, l := range lines {
		for i, c := range l {
			width[i] = max(width[i], len([]rune(c)))
			if li > 0 && c != "" {
				if _, err := strconv.ParseFloat(c, 64); err != nil {
					numeric[i] = false
				}
			}
		}
	}
	for _, l := range lines {
		var b strings.Builder
		for i, c := range l {
			pad := strings.Repeat(" ", width[i]-len([]rune(c)))
			if numeric[i] {
				b.WriteString(pad + c)
			} else {
				b.WriteString(c)
				if i < len(l)-1 {
					b.WriteString(pad)
				}
			}
			if i < len(l)-1 {
				b.WriteString("  ")
			}
		}
		b.WriteByte('\n')
		if _, err := io.WriteString(w, b.String()); err != nil {
			return err
		}
	}
	return nil
}

func (t *table) writeCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(t.header); err != nil {
		return err
	}
	if err := cw.WriteAll(t.rows); err != nil {
		return err
	}
	cw.Flush()
	return cw.Error()
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// list joins field paths for a table or CSV cell.
func list(items []string) string {
	if len(items) == 0 {
		return "-"
	}
	return strings.Join(items, " ")
}

func u64(n uint64) string { return strconv.FormatUint(n, 10) }
