package config

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// leafKeys returns every config key that holds a value (not a section), by the yaml tags of
// Config, with the Go struct and field that hold it.
func leafKeys() map[string]leaf {
	out := map[string]leaf{}
	var walk func(t reflect.Type, prefix string, index []int)
	walk = func(t reflect.Type, prefix string, index []int) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if tag == "" || tag == "-" {
				continue
			}
			key := prefix + tag
			idx := append(slices.Clone(index), i)
			if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(time.Duration(0)) {
				walk(f.Type, key+".", idx)
				continue
			}
			out[key] = leaf{structName: t.Name(), field: f.Name, index: idx}
		}
	}
	walk(reflect.TypeOf(Config{}), "", nil)
	return out
}

type leaf struct {
	structName, field string
	index             []int
}

// referenceRow is one row of the config table of docs/configuration.md: its keys and its default column.
type referenceRow struct {
	keys []string
	def  string
}

// referenceTable parses the table under "## Config reference" in docs/configuration.md. A row may name
// several keys: "`a.b.c`, `.d`" (a sibling of the first) or "`a.tls.*`" (every key below).
func referenceTable(t *testing.T, all map[string]leaf) []referenceRow {
	b, err := os.ReadFile("../../docs/configuration.md")
	require.NoError(t, err)
	text := string(b)
	start := strings.Index(text, "## Config reference")
	require.GreaterOrEqual(t, start, 0, "docs/configuration.md has no config reference")
	section := text[start:]
	if end := strings.Index(section[3:], "\n## "); end >= 0 {
		section = section[:end+3]
	}
	code := regexp.MustCompile("`([^`]*)`")
	var rows []referenceRow
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 || !strings.Contains(cells[1], "`") {
			continue
		}
		var keys []string
		for _, m := range code.FindAllStringSubmatch(cells[1], -1) {
			k := m[1]
			switch {
			case strings.HasSuffix(k, ".*"):
				for key := range all {
					if strings.HasPrefix(key, strings.TrimSuffix(k, "*")) {
						keys = append(keys, key)
					}
				}
			case strings.HasPrefix(k, ".") && len(keys) > 0:
				keys = append(keys, keys[0][:strings.LastIndex(keys[0], ".")]+k)
			default:
				keys = append(keys, k)
			}
		}
		rows = append(rows, referenceRow{keys: keys, def: strings.TrimSpace(cells[2])})
	}
	return rows
}

// computedDefaults are defaults that depend on other keys; docs/configuration.md words them, this checks them.
var computedDefaults = map[string]func(t *testing.T, c *Config){
	"ingest.jurisdictions": func(t *testing.T, c *Config) {
		assert.Equal(t, DefaultJurisdictions(), c.Ingest.Jurisdictions)
	},
	"kafka.replication_factor": func(t *testing.T, c *Config) {
		assert.Equal(t, 1, c.Kafka.ReplicationFactor, "one broker")
		c3, err := Parse("c.yaml", []byte("ingest:\n  write_keys: [k]\nkafka:\n  brokers: [a:1, b:1, c:1]\n"), envOf(nil))
		require.NoError(t, err)
		assert.Equal(t, 3, c3.Kafka.ReplicationFactor, "three brokers")
	},
	"kafka.min_insync_replicas": func(t *testing.T, c *Config) {
		assert.Equal(t, 1, c.Kafka.MinInsyncReplicas, "one broker")
		for rf, want := range map[string]int{"": 2, "1": 1, "2": 2} {
			y := "ingest:\n  write_keys: [k]\nkafka:\n  brokers: [a:1, b:1, c:1]\n"
			if rf != "" {
				y += "  replication_factor: " + rf + "\n"
			}
			c3, err := Parse("c.yaml", []byte(y), envOf(nil))
			require.NoError(t, err)
			assert.Equal(t, want, c3.Kafka.MinInsyncReplicas, "three brokers, replication_factor %q", rf)
		}
	},
	"ingest.rate_burst": func(t *testing.T, _ *Config) {
		for limit, burst := range map[int]int{0: 0, 100: 500, 2000: 2000} {
			c, err := Parse("c.yaml", []byte("ingest:\n  write_keys: [k]\n  rate_limit: "+itoa(limit)+"\n"), envOf(nil))
			require.NoError(t, err)
			assert.Equal(t, burst, c.Ingest.RateBurst, "rate_limit %d", limit)
		}
	},
}

func itoa(i int) string { b, _ := yaml.Marshal(i); return strings.TrimSpace(string(b)) }

// TestConfigReference: the config table of docs/configuration.md names every key of Config exactly once, and
// the default it states is the one the code applies: a `value` is parsed as YAML and compared,
// "none"/"off" means the zero value, "**required**" means a config without it is refused.
func TestConfigReference(t *testing.T) {
	all := leafKeys()
	rows := referenceTable(t, all)
	c, err := Parse("c.yaml", []byte("ingest:\n  write_keys: [k]\n"), envOf(nil))
	require.NoError(t, err)
	seen := map[string]bool{}
	for _, row := range rows {
		for _, key := range row.keys {
			t.Run(key, func(t *testing.T) {
				l, ok := all[key]
				require.True(t, ok, "docs/configuration.md names %s, which is not a config key", key)
				require.False(t, seen[key], "docs/configuration.md names %s twice", key)
				seen[key] = true
				got := reflect.ValueOf(*c).FieldByIndex(l.index)
				def := row.def
				switch {
				case strings.HasPrefix(def, "**required**"):
					_, err := Parse("c.yaml", []byte("kafka:\n  topic_prefix: x.\n"), envOf(nil))
					require.ErrorContains(t, err, key)
				case strings.HasPrefix(def, "none"), strings.HasPrefix(def, "off"):
					assert.True(t, got.IsZero(), "docs/configuration.md says %s has no default, the code sets %v", key, got)
				case strings.HasPrefix(def, "`"):
					text := def[1 : 1+strings.Index(def[1:], "`")]
					want := reflect.New(got.Type())
					if got.Type() == reflect.TypeOf(time.Duration(0)) {
						d, err := time.ParseDuration(text)
						require.NoError(t, err, "default %q of %s", text, key)
						want.Elem().SetInt(int64(d))
					} else {
						require.NoError(t, yaml.Unmarshal([]byte(text), want.Interface()), "default %q of %s", text, key)
					}
					assert.Equal(t, want.Elem().Interface(), got.Interface(), "docs/configuration.md's default of %s", key)
				default:
					check, ok := computedDefaults[key]
					require.True(t, ok, "docs/configuration.md's default of %s (%q) is neither a `value`, none, off nor required: add a check to computedDefaults", key, def)
					check(t, c)
				}
			})
		}
	}
	for key := range all {
		assert.True(t, seen[key], "docs/configuration.md's config reference lacks %s", key)
	}
}

// TestDefaultsInDocComments: every config key's field says its default (or that it is required)
// in its doc comment, or in the comment of the group of fields it belongs to. The comment is
// where a default is stated; the table in docs/configuration.md repeats it and is checked above.
func TestDefaultsInDocComments(t *testing.T) {
	fset := token.NewFileSet()
	docs := map[string]string{} // "Struct.Field" -> doc of the field or of the group it follows
	for _, file := range []string{"config.go", "security.go"} {
		f, err := parser.ParseFile(fset, file, nil, parser.ParseComments)
		require.NoError(t, err)
		ast.Inspect(f, func(n ast.Node) bool {
			ts, ok := n.(*ast.TypeSpec)
			if !ok {
				return true
			}
			st, ok := ts.Type.(*ast.StructType)
			if !ok {
				return false
			}
			group := ""
			for _, fld := range st.Fields.List {
				if fld.Doc != nil {
					group = fld.Doc.Text()
				}
				for _, name := range fld.Names {
					docs[ts.Name.Name+"."+name.Name] = group
				}
			}
			return false
		})
	}
	for key, l := range leafKeys() {
		doc, ok := docs[l.structName+"."+l.field]
		require.True(t, ok, "no declaration of %s.%s", l.structName, l.field)
		assert.Regexp(t, `Default|required`, doc, "%s (%s.%s): the doc comment must state the default", key, l.structName, l.field)
	}
}
