// The strict JSON reader: it decodes a JSON object into a Go struct by reflection,
// refusing what encoding/json lets through, and names the path of every error.

package pipeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// decodeStrict decodes raw, one JSON object, into *dst, whose type T is a struct.
// Like json.Unmarshal it writes only the fields present, over what *dst holds
// (null sets a slice, map or pointer to nil and leaves any other field as it is).
// Unlike it, it refuses unknown fields (with a "did you mean" hint), field names
// in another case, values of the wrong type, fractional or out-of-range numbers,
// keys given twice and more than one JSON value. Every error is a *BadInputError
// that names the field by its JSON path, like outer.inner, m["key"] or list[0].
func decodeStrict[T any](raw []byte, dst *T) error {
	t := reflect.TypeFor[T]()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return syntaxError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return &BadInputError{Message: "input has more than one JSON value"}
	}
	if _, ok := v.(map[string]any); !ok {
		return &BadInputError{Message: "input must be a JSON object, got " + describe(v)}
	}
	if err := checkShape("", v, t); err != nil {
		return err
	}
	if err := checkDuplicateKeys(raw, t); err != nil {
		return err
	}
	// The shape is checked, so this cannot fail on types or names.
	if err := json.Unmarshal(raw, dst); err != nil {
		return &BadInputError{Message: err.Error()}
	}
	return nil
}

// syntaxError refuses input that is not JSON at all, saying where it breaks.
func syntaxError(err error) error {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return &BadInputError{Message: fmt.Sprintf("input is not valid JSON at byte %d: %v", syn.Offset, err)}
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return &BadInputError{Message: "input is not valid JSON: it ends too early"}
	}
	return &BadInputError{Message: "input is not valid JSON: " + err.Error()}
}

// checkShape walks a decoded JSON value beside the Go type it will be decoded
// into, and refuses unknown fields and wrong types by their JSON path. It is
// stricter than encoding/json: field names must match exactly (not in any case),
// numbers must be whole, and the path of a nested error is named.
func checkShape(path string, v any, t reflect.Type) error {
	if v == nil {
		// null leaves a field unset. Inside an array or a map there is no field
		// to leave unset, so null there is a wrong type.
		if strings.HasSuffix(path, "]") {
			return wrongType(path, t, v)
		}
		return nil
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		if _, ok := v.(string); !ok {
			return wrongType(path, t, v)
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			return wrongType(path, t, v)
		}
	case reflect.Int:
		n, ok := v.(json.Number)
		if !ok {
			return wrongType(path, t, v)
		}
		if _, err := strconv.ParseInt(string(n), 10, 64); err != nil {
			if _, ferr := strconv.ParseFloat(string(n), 64); ferr == nil && !strings.ContainsAny(string(n), ".eE") {
				return &BadInputError{Field: path, Message: fmt.Sprintf("%s is out of range", n)}
			}
			return &BadInputError{Field: path, Message: fmt.Sprintf("want a whole number, got %s", n)}
		}
	case reflect.Float64:
		n, ok := v.(json.Number)
		if !ok {
			return wrongType(path, t, v)
		}
		if f, err := strconv.ParseFloat(string(n), 64); err != nil || math.IsInf(f, 0) {
			return &BadInputError{Field: path, Message: fmt.Sprintf("%s is out of range", n)}
		}
	case reflect.Slice:
		items, ok := v.([]any)
		if !ok {
			return wrongType(path, t, v)
		}
		for i, item := range items {
			if err := checkShape(fmt.Sprintf("%s[%d]", path, i), item, t.Elem()); err != nil {
				return err
			}
		}
	case reflect.Map:
		obj, ok := v.(map[string]any)
		if !ok {
			return wrongType(path, t, v)
		}
		for _, k := range slices.Sorted(maps.Keys(obj)) {
			if err := checkShape(path+"["+strconv.Quote(k)+"]", obj[k], t.Elem()); err != nil {
				return err
			}
		}
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			return wrongType(path, t, v)
		}
		fields := jsonFields(t)
		for _, k := range slices.Sorted(maps.Keys(obj)) {
			ft, known := fields[k]
			if !known {
				return unknownField(join(path, k), k, fields)
			}
			if err := checkShape(join(path, k), obj[k], ft); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("checkShape: no rule for %s", t)
	}
	return nil
}

// checkDuplicateKeys refuses an object that gives a field twice: decoders keep
// the last one silently, and which one the user meant is anyone's guess.
// t (nil where unknown) spells the path of a map key as tags["key"].
func checkDuplicateKeys(raw []byte, t reflect.Type) error {
	type frame struct {
		path    string
		t       reflect.Type
		isObj   bool
		seen    map[string]bool
		key     string
		wantKey bool
		index   int
	}
	// childOf is the path and type of the value that f reads next.
	childOf := func(f *frame) (string, reflect.Type) {
		if f == nil {
			return "", t
		}
		var ct reflect.Type
		if f.t != nil {
			switch f.t.Kind() {
			case reflect.Struct:
				ct = jsonFields(f.t)[f.key]
			case reflect.Map, reflect.Slice:
				ct = f.t.Elem()
			}
			if ct != nil && ct.Kind() == reflect.Pointer {
				ct = ct.Elem()
			}
		}
		switch {
		case !f.isObj:
			return fmt.Sprintf("%s[%d]", f.path, f.index), ct
		case f.t != nil && f.t.Kind() == reflect.Map:
			return f.path + "[" + strconv.Quote(f.key) + "]", ct
		}
		return join(f.path, f.key), ct
	}
	var stack []*frame
	top := func() *frame {
		if len(stack) == 0 {
			return nil
		}
		return stack[len(stack)-1]
	}
	// done moves the enclosing object or array past the value just read.
	done := func() {
		if f := top(); f != nil {
			f.wantKey = f.isObj
			f.index++
		}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if err != nil {
			// io.EOF at the end; syntax errors were reported before this runs.
			return nil
		}
		f := top()
		if f != nil && f.isObj && f.wantKey {
			if tok == json.Delim('}') {
				stack = stack[:len(stack)-1]
				done()
				continue
			}
			k, _ := tok.(string)
			if f.seen[k] {
				f.key = k
				path, _ := childOf(f)
				return &BadInputError{Field: path, Message: "is given more than once"}
			}
			f.seen[k], f.key, f.wantKey = true, k, false
			continue
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			path, ct := childOf(f)
			obj := tok == json.Delim('{')
			stack = append(stack, &frame{path: path, t: ct, isObj: obj, seen: map[string]bool{}, wantKey: obj})
		case json.Delim(']'):
			stack = stack[:len(stack)-1]
			done()
		default:
			done()
		}
	}
}

// join spells the path of field name inside the object at path.
func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// jsonFields maps a struct's JSON field names to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	fields := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fields[name] = f.Type
	}
	return fields
}

// unknownField refuses key, which is not among fields, with a hint: the field
// it most likely misspells, or else every field that the object may have.
func unknownField(path, key string, fields map[string]reflect.Type) error {
	names := slices.Sorted(maps.Keys(fields))
	if n := closest(key, names); n != "" {
		return &BadInputError{Field: path, Message: fmt.Sprintf("unknown field (did you mean %q?)", n)}
	}
	return &BadInputError{Field: path, Message: "unknown field; the fields here are " + strings.Join(names, ", ")}
}

// closest is the known name that key most likely misspells, or "": the same name
// in another case, then a name within two edits, then the longest shared start
// of at least 4 letters ("replicas" for "replicaCount").
func closest(key string, names []string) string {
	k := strings.ToLower(key)
	for _, n := range names {
		if strings.ToLower(n) == k {
			return n
		}
	}
	for _, n := range names {
		if editDistance(strings.ToLower(n), k) <= 2 {
			return n
		}
	}
	best, bestLen := "", 3
	for _, n := range names {
		l := strings.ToLower(n)
		i := 0
		for i < len(l) && i < len(k) && l[i] == k[i] {
			i++
		}
		if i > bestLen {
			best, bestLen = n, i
		}
	}
	return best
}

// editDistance is the Levenshtein distance, for "did you mean" hints.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// wrongType refuses v, which cannot be decoded into t, saying what t wants.
func wrongType(path string, t reflect.Type, v any) error {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var want string
	switch t.Kind() {
	case reflect.String:
		want = "a string"
	case reflect.Bool:
		want = "true or false"
	case reflect.Int, reflect.Float64:
		want = "a number"
	case reflect.Slice:
		want = "an array"
	case reflect.Map:
		want = "an object of strings"
	default:
		want = "an object"
	}
	return &BadInputError{Field: path, Message: fmt.Sprintf("want %s, got %s", want, describe(v))}
}

// describe names a decoded JSON value in an error message.
func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		if utf8.RuneCountInString(x) > 40 {
			x = string([]rune(x)[:40]) + "..."
		}
		return strconv.Quote(x)
	case json.Number:
		return string(x)
	case bool:
		return strconv.FormatBool(x)
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}
