package config

import (
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// Bind registers one flag per Config field on fs, named by the field's yaml key, described
// by its usage tag, defaulting to the field's value in c and writing into c. A field of a
// type Bind does not know is a programming error (panic), caught by the package's tests.
func Bind(fs *pflag.FlagSet, c *Config) {
	v := reflect.ValueOf(c).Elem()
	t := v.Type()
	for i := range t.NumField() {
		name, usage := flagName(t.Field(i)), t.Field(i).Tag.Get("usage")
		if name == "" {
			continue
		}
		switch p := v.Field(i).Addr().Interface().(type) {
		case *string:
			fs.StringVar(p, name, *p, usage)
		case *int:
			fs.IntVar(p, name, *p, usage)
		case *bool:
			fs.BoolVar(p, name, *p, usage)
		case *time.Duration:
			fs.DurationVar(p, name, *p, usage)
		case *[]string:
			fs.Var((*listValue)(p), name, usage)
		default:
			panic(fmt.Sprintf("config: field %s of type %s has no flag kind", t.Field(i).Name, t.Field(i).Type))
		}
	}
}

// Resolve is the configuration fabricd runs with: fromFlags (the Config Bind filled: the
// defaults and the flags given) when there is no file; else the defaults, then the file,
// then every flag set on the command line: flags win over the file, the file over the
// defaults.
func Resolve(fs *pflag.FlagSet, fromFlags Config, file string) (Config, error) {
	if file == "" {
		return fromFlags, nil
	}
	cfg := DefaultConfig()
	if err := cfg.LoadFile(file); err != nil {
		return cfg, err
	}
	dst, src := reflect.ValueOf(&cfg).Elem(), reflect.ValueOf(fromFlags)
	fs.Visit(func(fl *pflag.Flag) {
		if i, ok := fieldIndex[fl.Name]; ok {
			dst.Field(i).Set(src.Field(i))
		}
	})
	return cfg, nil
}

// fieldIndex maps a flag (yaml key) to its Config field.
var fieldIndex = func() map[string]int {
	t := reflect.TypeOf(Config{})
	m := map[string]int{}
	for i := range t.NumField() {
		if n := flagName(t.Field(i)); n != "" {
			m[n] = i
		}
	}
	return m
}()

func flagName(f reflect.StructField) string {
	n, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return n
}

// listValue is a comma-separated flag (--join a,b): white space around items and empty
// items are dropped, and a flag given again replaces the list.
type listValue []string

func (l *listValue) String() string { return strings.Join(*l, ",") }

// Set parses a comma-separated list.
func (l *listValue) Set(s string) error {
	*l = nil
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			*l = append(*l, item)
		}
	}
	return nil
}

// Type is what the help shows after the flag's name.
func (l *listValue) Type() string { return "string" }
