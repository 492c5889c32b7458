package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// compare prints, for every number in both reports, the previous figure, this one and the change.
func compare(w io.Writer, prevPath string, report map[string]any) error {
	b, err := os.ReadFile(prevPath)
	if err != nil {
		return fmt.Errorf("compare: %w", err)
	}
	var prev map[string]any
	if err := json.Unmarshal(b, &prev); err != nil {
		return fmt.Errorf("compare %s: %w", prevPath, err)
	}
	// Through JSON, so both sides hold the same types (float64 numbers).
	b, err = json.Marshal(report)
	if err != nil {
		return err
	}
	var cur map[string]any
	if err := json.Unmarshal(b, &cur); err != nil {
		return err
	}
	before, after := map[string]float64{}, map[string]float64{}
	flatten("", prev, before)
	flatten("", cur, after)
	var keys []string
	for k := range after {
		if _, ok := before[k]; ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	fmt.Fprintf(w, "%-50s %14s %14s %9s\n", "figure", "previous", "now", "change")
	for _, k := range keys {
		a, b := before[k], after[k]
		change := "="
		switch {
		case a != 0:
			change = fmt.Sprintf("%+.1f%%", (b-a)/a*100)
		case b != 0:
			change = "new"
		}
		fmt.Fprintf(w, "%-50s %14.4g %14.4g %9s\n", k, a, b, change)
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			fmt.Fprintf(w, "%-50s %14s %14.4g %9s\n", k, "-", after[k], "new")
		}
	}
	return nil
}

// flatten collects the numbers of a decoded JSON object by dotted path.
func flatten(prefix string, v any, out map[string]float64) {
	switch t := v.(type) {
	case map[string]any:
		for k, c := range t {
			flatten(strings.TrimPrefix(prefix+"."+k, "."), c, out)
		}
	case float64:
		out[prefix] = t
	}
}
