// Package cfntest reads synthesized CloudFormation templates (as
// assertions.Template.ToJSON gives them) for the CDK app's and the construct's tests.
package cfntest

import (
	"archive/zip"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
)

// WriteZip writes a zip holding one file, bootstrap, with content: a placeholder
// for a stage's zip, which synth only hashes.
func WriteZip(t *testing.T, path, content string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	z := zip.NewWriter(f)
	w, err := z.Create("bootstrap")
	if err == nil {
		_, err = w.Write([]byte(content))
	}
	if err == nil {
		err = z.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
}

func ResourcesOfType(tmpl map[string]any, typ string) []string {
	var ids []string
	for id, r := range tmpl["Resources"].(map[string]any) {
		if r.(map[string]any)["Type"] == typ {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

func TypeOf(tmpl map[string]any, id string) string {
	r, _ := tmpl["Resources"].(map[string]any)[id].(map[string]any)
	t, _ := r["Type"].(string)
	return t
}

func Props(tmpl map[string]any, id string) map[string]any {
	r, _ := tmpl["Resources"].(map[string]any)[id].(map[string]any)
	p, _ := r["Properties"].(map[string]any)
	return p
}

func Dig(v any, path ...string) any {
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func AnyList(v any) []any {
	if v == nil {
		return nil
	}
	if l, ok := v.([]any); ok {
		return l
	}
	return []any{v}
}

func StrList(v any) []string {
	var out []string
	for _, x := range AnyList(v) {
		out = append(out, fmt.Sprint(x))
	}
	return out
}

// RoleStatements are the statements of every policy attached to role.
func RoleStatements(tmpl map[string]any, role string) []map[string]any {
	var out []map[string]any
	add := func(doc any) {
		for _, st := range AnyList(Dig(doc, "Statement")) {
			out = append(out, st.(map[string]any))
		}
	}
	for _, inline := range AnyList(Props(tmpl, role)["Policies"]) {
		add(Dig(inline, "PolicyDocument"))
	}
	for _, id := range ResourcesOfType(tmpl, "AWS::IAM::Policy") {
		p := Props(tmpl, id)
		for _, r := range AnyList(p["Roles"]) {
			if Dig(r, "Ref") == role {
				add(p["PolicyDocument"])
			}
		}
	}
	return out
}

func ActionsOf(statements []map[string]any) []string {
	var actions []string
	for _, st := range statements {
		actions = append(actions, StrList(st["Action"])...)
	}
	sort.Strings(actions)
	return slices.Compact(actions)
}

// JoinParts splits a definition into its literal text and the logical ids that its
// Fn::Join references (Ref and Fn::GetAtt).
func JoinParts(t *testing.T, v any) (literal string, refs []string) {
	t.Helper()
	if s, ok := v.(string); ok {
		return s, nil
	}
	join, ok := Dig(v, "Fn::Join").([]any)
	if !ok || len(join) != 2 {
		t.Fatalf("definition is %v, want a string or Fn::Join", v)
	}
	var b strings.Builder
	for _, part := range join[1].([]any) {
		switch p := part.(type) {
		case string:
			b.WriteString(p)
		case map[string]any:
			if r, ok := p["Ref"]; ok {
				refs = append(refs, fmt.Sprint(r))
			} else if g, ok := p["Fn::GetAtt"].([]any); ok {
				refs = append(refs, fmt.Sprint(g[0]))
			}
			b.WriteString("<token>")
		}
	}
	return b.String(), refs
}

func GetAttOf(t *testing.T, v any) string {
	t.Helper()
	g, ok := Dig(v, "Fn::GetAtt").([]any)
	if !ok {
		t.Fatalf("%v is not a Fn::GetAtt", v)
	}
	return fmt.Sprint(g[0])
}

func RefOf(t *testing.T, v any) string {
	t.Helper()
	r, ok := Dig(v, "Ref").(string)
	if !ok {
		t.Fatalf("%v is not a Ref", v)
	}
	return r
}
