package policy

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// FieldError names the field of a YAML file that is wrong and why.
type FieldError struct {
	Field  string // dotted path, e.g. destinations.meta.type
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// withLine formats the error as "file:line: field: reason", finding the line in the parsed
// document so the user can jump straight to it.
func (e *FieldError) withLine(file string, root *yaml.Node) error {
	if line := LineOf(root, e.Field); line > 0 {
		return fmt.Errorf("%s:%d: %w", file, line, e)
	}
	return fmt.Errorf("%s: %w", file, e)
}

// LineOf returns the line of the node at a dotted path ("a.b[2].c") in a YAML document, or of
// the deepest ancestor found; 0 when nothing matches.
func LineOf(root *yaml.Node, path string) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := 0
	for _, part := range splitPath(path) {
		next := child(n, part)
		if next == nil {
			break
		}
		n, line = next, next.Line
	}
	return line
}

func splitPath(path string) []string {
	var parts []string
	for _, p := range strings.Split(path, ".") {
		name, idx, ok := strings.Cut(p, "[")
		parts = append(parts, name)
		if ok {
			parts = append(parts, "["+idx)
		}
	}
	return parts
}

func child(n *yaml.Node, part string) *yaml.Node {
	if strings.HasPrefix(part, "[") && n.Kind == yaml.SequenceNode {
		i, err := strconv.Atoi(strings.Trim(part, "[]"))
		if err != nil || i < 0 || i >= len(n.Content) {
			return nil
		}
		return n.Content[i]
	}
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == part {
			return n.Content[i+1]
		}
	}
	return nil
}

var yamlPrefix = regexp.MustCompile(`^yaml: (unmarshal errors:\n\s*)?`)

// CleanYAMLError turns yaml.v3's multi-line messages into one line ("line 7: field foo not found
// in type policy.Destination").
func CleanYAMLError(err error) error {
	msg := yamlPrefix.ReplaceAllString(err.Error(), "")
	msg = strings.Join(strings.Fields(msg), " ")
	return fmt.Errorf("%s", msg)
}
