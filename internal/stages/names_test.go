package stages

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/amifleet/amifleet/internal/pipeline"
)

// TestOneNamePerFunction holds the Lambda folders, their mains, the Stages methods and
// their files to pipeline.Functions (the ASL's Task names are held to it by
// stepfunctions.Lint, the CDK's functions by cdk's tests).
func TestOneNamePerFunction(t *testing.T) {
	entries, err := os.ReadDir("../../lambdas")
	if err != nil {
		t.Fatal(err)
	}
	var dirs, want []string
	for _, e := range entries {
		if e.IsDir() {
			dirs = append(dirs, e.Name())
		}
	}
	for _, f := range pipeline.Functions {
		want = append(want, f.Dir())
	}
	slices.Sort(want)
	if !slices.Equal(dirs, want) {
		t.Errorf("lambdas/ holds %v; pipeline.Functions wants %v", dirs, want)
	}

	for _, f := range pipeline.Functions {
		t.Run(f.Name, func(t *testing.T) {
			main := filepath.Join("../../lambdas", f.Dir(), "main.go")
			if got := startedFunction(t, main); got != f.Name {
				t.Errorf("%s starts %q; want stages.Start(pipeline.%s)", main, got, f.Name)
			}
			b, ok := bindings[f.Name]
			if !ok {
				t.Fatalf("no binding for %s in handler.go", f.Name)
			}
			fn := runtime.FuncForPC(reflect.ValueOf(b.method).Pointer()).Name()
			if !strings.HasSuffix(fn, ".(*Stages)."+f.Name) {
				t.Errorf("%s is bound to %s; want the method (*Stages).%s", f.Name, fn, f.Name)
			}
			if file := methodFile(t, f.Name); file != f.File() {
				t.Errorf("(*Stages).%s is in %q; want %q", f.Name, file, f.File())
			}
		})
	}
	if len(bindings) != len(pipeline.Functions) {
		t.Errorf("%d bindings for %d functions", len(bindings), len(pipeline.Functions))
	}
}

// TestEachWaitHasItsCheck: every wait is polled by a function of the table, and that
// function's answer lands under the wait's poll key.
func TestEachWaitHasItsCheck(t *testing.T) {
	for _, w := range pipeline.Waits {
		if !slices.ContainsFunc(pipeline.Functions, func(f pipeline.Function) bool { return f.Name == w.Check }) {
			t.Errorf("wait %s is checked by %q, which is not in pipeline.Functions", w.Name, w.Check)
		}
		if w.Check != pipeline.Cleanup && w.Check != pipeline.PruneGenerations && w.Check != "Check"+w.Name {
			t.Errorf("wait %s is checked by %q; want Check%s", w.Name, w.Check, w.Name)
		}
	}
}

// startedFunction is X in the file's stages.Start(pipeline.X).
func startedFunction(t *testing.T, path string) string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got string
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) != 1 {
			return true
		}
		if sel, ok := call.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "Start" {
			if arg, ok := call.Args[0].(*ast.SelectorExpr); ok {
				if pkg, ok := arg.X.(*ast.Ident); ok && pkg.Name == "pipeline" {
					got = arg.Sel.Name
				}
			}
		}
		return true
	})
	return got
}

// methodFile is the file of this package that declares (*Stages).name.
func methodFile(t *testing.T, name string) string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv != nil && fd.Name.Name == name {
				return path
			}
		}
	}
	return ""
}
