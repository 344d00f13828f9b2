package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/amifleet/amifleet/cdk/amifleet"
	"github.com/amifleet/amifleet/cdk/internal/cfntest"
	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	sfn "github.com/aws/aws-cdk-go/awscdk/v2/awsstepfunctions"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

// Every test reads one of two synthesized apps (synth costs seconds each):
// the default one, and one with every context key set.
var (
	defaultContext = map[string]any{}
	fullContext    = map[string]any{"schedule": "cron(0 6 * * ? *)", "local": "true", "arch": "x86_64", "createTimeoutSeconds": "20"}
)

type synthesized struct {
	stack    *AmiFleetStack
	template assertions.Template
	json     map[string]any
	err      error
}

var (
	synthMu sync.Mutex
	synths  = map[string]*synthesized{}
)

// synth builds the app with ctx once per test binary, with cdk-nag's AwsSolutions
// checks applied, from placeholder zips in a temporary repository root.
func synth(t *testing.T, ctx map[string]any) *synthesized {
	t.Helper()
	key := fmt.Sprint(ctx)
	synthMu.Lock()
	defer synthMu.Unlock()
	if s, ok := synths[key]; ok {
		if s.err != nil {
			t.Fatalf("newApp(%v): %v", ctx, s.err)
		}
		return s
	}
	s := &synthesized{}
	synths[key] = s
	root := fakeRoot(t, amifleet.GoArch(fmt.Sprint(ctx["arch"])))
	c := map[string]any{}
	for k, v := range ctx {
		c[k] = v
	}
	app := awscdk.NewApp(&awscdk.AppProps{Context: &c})
	awscdk.Aspects_Of(app).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{Verbose: jsii.Bool(true)}), nil)
	s.stack, s.err = newApp(app, root)
	if s.err != nil {
		t.Fatalf("newApp(%v): %v", ctx, s.err)
	}
	s.template = assertions.Template_FromStack(s.stack.Stack, nil)
	s.json = *s.template.ToJSON()
	return s
}

// fakeRoot is a repository root with a placeholder zip per function (synth only
// hashes them) and the real events/scheduled-input.json.
func fakeRoot(t *testing.T, goarch string) string {
	t.Helper()
	root, err := os.MkdirTemp("", "amifleet-cdk-test-")
	if err != nil {
		t.Fatal(err)
	}
	// Not t.TempDir: the synthesized apps outlive the test that made them; TestMain
	// removes it.
	tempRoots = append(tempRoots, root)
	build := filepath.Join(root, "build", goarch)
	if err := os.MkdirAll(build, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range pipeline.Functions {
		writeZip(t, filepath.Join(build, f.Dir()+".zip"), "placeholder bootstrap for "+f.Name)
	}
	input, err := os.ReadFile(filepath.Join("..", "events", "scheduled-input.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "events"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "events", "scheduled-input.json"), input, 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

// tempRoots are fakeRoot's folders, removed when every test has run.
var tempRoots []string

func TestMain(m *testing.M) {
	code := m.Run()
	jsii.Close()
	for _, r := range tempRoots {
		_ = os.RemoveAll(r)
	}
	os.Exit(code)
}

func TestResourceCounts(t *testing.T) {
	n := float64(len(pipeline.Functions))
	tests := []struct {
		name string
		ctx  map[string]any
		want map[string]float64
	}{
		{"default", defaultContext, map[string]float64{
			"AWS::Lambda::Function":            n,
			"AWS::IAM::Role":                   n + 3, // one per function, one per state machine
			"AWS::IAM::Policy":                 n + 3,
			"AWS::Logs::LogGroup":              n + 3,
			"AWS::StepFunctions::StateMachine": 3,
			"AWS::DynamoDB::Table":             1,
			"AWS::Scheduler::Schedule":         0,
			"AWS::Events::Rule":                0,
			"AWS::Lambda::Permission":          0,
		}},
		{"with schedule", fullContext, map[string]float64{
			"AWS::Lambda::Function":            n,
			"AWS::IAM::Role":                   n + 4, // and the schedule's
			"AWS::IAM::Policy":                 n + 4,
			"AWS::Logs::LogGroup":              n + 3,
			"AWS::StepFunctions::StateMachine": 3,
			"AWS::Scheduler::Schedule":         1,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := synth(t, tt.ctx)
			for typ, count := range tt.want {
				got := len(resourcesOfType(s.json, typ))
				if float64(got) != count {
					t.Errorf("%s: %d resources, want %v", typ, got, count)
				}
			}
		})
	}
}

func TestFunctionsSizedAndObservable(t *testing.T) {
	want := map[string]struct{ memory, timeout float64 }{
		"Validate":                {128, 30},
		"CreateSecurityGroups":    {256, 60},
		"LaunchBase":              {256, 60},
		"CheckBaseStopped":        {128, 30},
		"CreateImage":             {256, 60},
		"CheckImageAvailable":     {128, 30},
		"CreateLoadBalancer":      {256, 120},
		"CheckLoadBalancerActive": {128, 30},
		"LaunchReplicas":          {256, 120},
		"CheckInstancesRunning":   {128, 30},
		"RegisterTargets":         {256, 60},
		"CheckTargetsHealthy":     {128, 30},
		"Verify":                  {128, 330},
		"RecordRun":               {128, 30},
		"Cleanup":                 {256, 120},
		"PrepareRefresh":          {128, 30},
		"CommitGeneration":        {128, 30},
		"PruneGenerations":        {256, 120},
	}
	if v := want["Verify"].timeout; v <= pipeline.MaxVerifySeconds {
		t.Fatalf("Verify's timeout %v s leaves no margin over the %d s that Validate lets it take", v, pipeline.MaxVerifySeconds)
	}
	// After a Parallel branch fails, Cleanup's clean looks span the longest a create
	// still in flight can run: no create may run longer.
	creates := []string{pipeline.CreateSecurityGroups, pipeline.LaunchBase, pipeline.CreateImage,
		pipeline.CreateLoadBalancer, pipeline.LaunchReplicas}
	for _, f := range creates {
		if v := want[f].timeout; v > pipeline.CreateTimeoutSeconds {
			t.Fatalf("%s's timeout %v s is longer than the %d s Cleanup waits out (pipeline.CreateTimeoutSeconds)", f, v, pipeline.CreateTimeoutSeconds)
		}
	}
	for _, tc := range []struct {
		ctx           map[string]any
		arch          string
		createTimeout float64 // what the context makes of the creates' timeouts
	}{{defaultContext, "arm64", pipeline.CreateTimeoutSeconds}, {fullContext, "x86_64", 20}} {
		s := synth(t, tc.ctx)
		for _, f := range pipeline.Functions {
			t.Run(tc.arch+"/"+f.Name, func(t *testing.T) {
				w, ok := want[f.Name]
				if !ok {
					t.Fatalf("no expected sizing for %s: add it to this table", f.Name)
				}
				if slices.Contains(creates, f.Name) {
					w.timeout = min(w.timeout, tc.createTimeout)
				}
				id := logicalID(t, s, s.stack.Fleet.Functions[f.Name].Node().DefaultChild())
				p := props(s.json, id)
				checks := map[string][2]any{
					"Runtime":      {p["Runtime"], "provided.al2023"},
					"Handler":      {p["Handler"], "bootstrap"},
					"Architecture": {p["Architectures"], []any{tc.arch}},
					"MemorySize":   {p["MemorySize"], w.memory},
					"Timeout":      {p["Timeout"], w.timeout},
					"Tracing":      {p["TracingConfig"], map[string]any{"Mode": "Active"}},
					"LogFormat":    {dig(p, "LoggingConfig", "LogFormat"), "JSON"},
				}
				for name, c := range checks {
					if !reflect.DeepEqual(c[0], c[1]) {
						t.Errorf("%s = %v, want %v", name, c[0], c[1])
					}
				}
				// Stages read only the Lambda's own variables, but for Cleanup and
				// PruneGenerations, which wait out the creates' timeout as deployed, and
				// the functions that read or write the runs table, which get its name.
				env := map[string]any{}
				if f.Name == pipeline.Cleanup || f.Name == pipeline.PruneGenerations {
					env[pipeline.EnvCreateTimeout] = fmt.Sprint(tc.createTimeout)
				}
				if slices.Contains([]string{pipeline.RecordRun, pipeline.Cleanup, pipeline.PrepareRefresh,
					pipeline.CommitGeneration, pipeline.PruneGenerations}, f.Name) {
					env[pipeline.EnvRunsTable] = map[string]any{"Ref": logicalID(t, s, s.stack.Fleet.Runs.Node().DefaultChild())}
				}
				wantEnv := any(env)
				if len(env) == 0 {
					wantEnv = nil
				}
				if got := dig(p, "Environment", "Variables"); !reflect.DeepEqual(got, wantEnv) {
					t.Errorf("Environment.Variables = %v, want %v", got, wantEnv)
				}
				// Its own log group, with a retention.
				lg := dig(p, "LoggingConfig", "LogGroup", "Ref")
				if lg == nil || typeOf(s.json, fmt.Sprint(lg)) != "AWS::Logs::LogGroup" {
					t.Fatalf("LoggingConfig.LogGroup = %v, want a Ref to a log group", dig(p, "LoggingConfig"))
				}
				if r := props(s.json, fmt.Sprint(lg))["RetentionInDays"]; r != float64(30) {
					t.Errorf("log group retention = %v days, want 30", r)
				}
			})
		}
	}
}

// commonActions are in every function's role: its own logs, and X-Ray.
var commonActions = []string{"logs:CreateLogStream", "logs:PutLogEvents", "xray:PutTelemetryRecords", "xray:PutTraceSegments"}

// grantedUncalled are the actions a role may be granted that the stages' tests never
// see called, each with its reason. Everything else granted must be in the recorded
// calls (internal/stages/testdata/iam-actions.json), and everything recorded granted.
var grantedUncalled = map[string]string{
	"ec2:CreateTags": "tags given at create time (TagSpecifications) are authorized as ec2:CreateTags " +
		"on the new resources, with ec2:CreateAction naming the create call",
	"elasticloadbalancing:AddTags": "tags given at create time (Tags on CreateTargetGroup/CreateLoadBalancer) " +
		"are authorized as elasticloadbalancing:AddTags on the new resources",
	"iam:CreateServiceLinkedRole": "an account's first load balancer makes ELB create its service-linked role " +
		"in the caller's name; no emulator asks for it",
	"logs:CreateLogStream":     "the Lambda runtime writes the function's logs",
	"logs:PutLogEvents":        "the Lambda runtime writes the function's logs",
	"xray:PutTraceSegments":    "active tracing: the Lambda service sends the function's segments",
	"xray:PutTelemetryRecords": "active tracing: the Lambda service sends the function's segments",
}

// recordedCalls are the IAM actions each function called in the stages' tests.
func recordedCalls(t *testing.T) map[string][]string {
	t.Helper()
	b, err := os.ReadFile("../internal/stages/testdata/iam-actions.json")
	if err != nil {
		t.Fatal(err)
	}
	var calls map[string][]string
	if err := json.Unmarshal(b, &calls); err != nil {
		t.Fatal(err)
	}
	return calls
}

// TestFunctionRolesAllowExactlyTheirActions holds each function's role to the actions
// its code calls: every recorded call granted; nothing granted that was not called,
// unless grantedUncalled gives the reason.
func TestFunctionRolesAllowExactlyTheirActions(t *testing.T) {
	want := recordedCalls(t)
	s := synth(t, defaultContext)
	roles := map[string]string{} // role logical id -> function
	for _, f := range pipeline.Functions {
		t.Run(f.Name, func(t *testing.T) {
			called, ok := want[f.Name]
			if !ok {
				t.Fatalf("internal/stages/testdata/iam-actions.json has no entry for %s: run go test ./internal/stages -update-iam", f.Name)
			}
			fn := props(s.json, logicalID(t, s, s.stack.Fleet.Functions[f.Name].Node().DefaultChild()))
			role := fmt.Sprint(dig(fn, "Role", "Fn::GetAtt").([]any)[0])
			if other, dup := roles[role]; dup {
				t.Fatalf("role %s shared with %s", role, other)
			}
			roles[role] = f.Name
			if mp := props(s.json, role)["ManagedPolicyArns"]; mp != nil {
				t.Errorf("managed policies %v, want none", mp)
			}
			statements := roleStatements(s.json, role)
			granted := actionsOf(statements)
			for _, a := range called {
				if !slices.Contains(granted, a) {
					t.Errorf("%s calls %s; its role does not grant it (cdk/amifleet/iam.go)", f.Name, a)
				}
			}
			for _, a := range granted {
				if _, ok := grantedUncalled[a]; !ok && !slices.Contains(called, a) {
					t.Errorf("the role grants %s, which %s never calls (and grantedUncalled gives no reason)", a, f.Name)
				}
			}
			for _, a := range commonActions {
				if !slices.Contains(granted, a) {
					t.Errorf("the role lacks %s, which every function needs", a)
				}
			}
			checkScoped(t, statements)
		})
	}
}

// checkScoped asserts the least-privilege rules every stage role follows: no action
// wildcard; "*" resources only for calls that support no resource-level permissions;
// creates need the run tag in the request, changes and deletes on a tagged resource.
func checkScoped(t *testing.T, statements []map[string]any) {
	t.Helper()
	for _, st := range statements {
		if st["Effect"] != "Allow" {
			t.Errorf("statement %v: want only Allow", st)
		}
		actions := strList(st["Action"])
		resources := st["Resource"]
		for _, a := range actions {
			if strings.Contains(a, "*") {
				t.Errorf("action %q has a wildcard", a)
			}
			verb := a[strings.Index(a, ":")+1:]
			if reflect.DeepEqual(resources, "*") || slices.Contains(anyList(resources), any("*")) {
				if !strings.HasPrefix(verb, "Describe") && !strings.HasPrefix(a, "xray:") {
					t.Errorf("action %q on Resource *", a)
				}
			}
			mutating := strings.HasPrefix(verb, "Create") || strings.HasPrefix(verb, "Delete") ||
				strings.HasPrefix(verb, "Terminate") || strings.HasPrefix(verb, "Deregister") ||
				strings.HasPrefix(verb, "Start") || strings.HasPrefix(verb, "Authorize") ||
				strings.HasPrefix(verb, "Register") || verb == "AddTags" || verb == "GetConsoleOutput"
			if !mutating || strings.HasPrefix(a, "logs:") {
				continue
			}
			cond, _ := json.Marshal(st["Condition"])
			if st["Condition"] == nil && !referencesOnly(resources) {
				t.Errorf("%s without a condition on %v", a, resources)
			}
			if strings.HasPrefix(a, "dynamodb:") {
				// The runs table is the stack's own, and only its ARN is granted.
				if r := anyList(resources); len(r) != 1 || !strings.Contains(fmt.Sprint(r[0]), "Runs") {
					t.Errorf("%s on %v, want the runs table only", a, resources)
				}
				continue
			}
			if strings.HasPrefix(verb, "Delete") || strings.HasPrefix(verb, "Terminate") || strings.HasPrefix(verb, "Deregister") {
				if !strings.Contains(string(cond), "aws:ResourceTag/amifleet:run-id") {
					t.Errorf("%s: condition %s, want the resource's run tag", a, cond)
				}
			}
		}
	}
}

// referencesOnly is true for statements that allow a create to reference the user's
// resources (subnet, VPC, key pair, base image, network interface), which carry no tags.
func referencesOnly(resources any) bool {
	b, _ := json.Marshal(resources)
	s := string(b)
	for _, r := range []string{"subnet/*", "vpc/*", "key-pair/*", "network-interface/*", "image/*", "service-role/elasticloadbalancing"} {
		s = strings.ReplaceAll(s, r, "")
	}
	return !strings.Contains(s, "/*")
}

func TestStateMachines(t *testing.T) {
	s := synth(t, defaultContext)
	arnOf := map[string]string{} // function logical id -> name
	for _, f := range pipeline.Functions {
		arnOf[logicalID(t, s, s.stack.Fleet.Functions[f.Name].Node().DefaultChild())] = f.Name
	}
	teardownID := logicalID(t, s, s.stack.Fleet.Teardown.Node().DefaultChild())
	all := make([]string, 0, len(pipeline.Functions))
	for _, f := range pipeline.Functions {
		if f.RefreshOnly() {
			continue
		}
		all = append(all, f.Name)
	}
	tests := []struct {
		name         string
		id           string
		invokes      []string
		startsOthers []string
	}{
		{"Pipeline", logicalID(t, s, s.stack.Fleet.Pipeline.Node().DefaultChild()), all, []string{teardownID}},
		{"Teardown", teardownID, []string{"Cleanup"}, nil},
		{"Refresh", logicalID(t, s, s.stack.Fleet.Refresh.Node().DefaultChild()), pipeline.RefreshFunctions, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := props(s.json, tt.id)
			if p["DefinitionSubstitutions"] != nil {
				t.Errorf("DefinitionSubstitutions = %v, want the ARNs rendered into the definition", p["DefinitionSubstitutions"])
			}
			literal, refs := joinParts(t, p["DefinitionString"])
			if strings.Contains(literal, "${") {
				i := strings.Index(literal, "${")
				// Even in a Comment: CloudFormation and cfn-lint (E1029) read "${" as a parameter.
				t.Errorf("unresolved placeholder in definition: %q", literal[i:min(len(literal), i+60)])
			}
			var referenced []string
			for _, r := range refs {
				if name, ok := arnOf[r]; ok {
					referenced = append(referenced, name)
				}
			}
			sort.Strings(referenced)
			referenced = slices.Compact(referenced)
			wantInvokes := slices.Clone(tt.invokes)
			sort.Strings(wantInvokes)
			if !slices.Equal(referenced, wantInvokes) {
				t.Errorf("definition references functions %v, want %v", referenced, wantInvokes)
			}
			if tt.startsOthers != nil && !slices.Contains(refs, teardownID) {
				t.Errorf("definition does not reference the Teardown state machine")
			}
			if lvl := dig(p, "LoggingConfiguration", "Level"); lvl != "ALL" {
				t.Errorf("logging level %v, want ALL", lvl)
			}
			if d := dig(p, "LoggingConfiguration", "IncludeExecutionData"); d != false {
				t.Errorf("IncludeExecutionData = %v, want false", d)
			}
			if tr := dig(p, "TracingConfiguration", "Enabled"); tr != true {
				t.Errorf("tracing = %v, want enabled", tr)
			}

			role := fmt.Sprint(dig(p, "RoleArn", "Fn::GetAtt").([]any)[0])
			var invoke, start []string
			for _, st := range roleStatements(s.json, role) {
				for _, a := range strList(st["Action"]) {
					switch {
					case a == "lambda:InvokeFunction":
						for _, r := range anyList(st["Resource"]) {
							invoke = append(invoke, arnOf[getAttOf(t, r)])
						}
					case a == "states:StartExecution":
						for _, r := range anyList(st["Resource"]) {
							start = append(start, refOf(t, r))
						}
					case strings.HasPrefix(a, "lambda:") || strings.HasPrefix(a, "states:"):
						t.Errorf("unexpected action %s", a)
					}
				}
			}
			sort.Strings(invoke)
			if !slices.Equal(invoke, wantInvokes) {
				t.Errorf("may invoke %v, want %v", invoke, wantInvokes)
			}
			if !slices.Equal(start, tt.startsOthers) {
				t.Errorf("may start %v, want %v", start, tt.startsOthers)
			}
		})
	}
}

func TestScheduleOnlyWhenContextSetsIt(t *testing.T) {
	if got := resourcesOfType(synth(t, defaultContext).json, "AWS::Scheduler::Schedule"); len(got) != 0 {
		t.Fatalf("schedules without the schedule context: %v", got)
	}
	s := synth(t, fullContext)
	schedules := resourcesOfType(s.json, "AWS::Scheduler::Schedule")
	if len(schedules) != 1 {
		t.Fatalf("%d schedules, want 1", len(schedules))
	}
	p := props(s.json, schedules[0])
	if p["ScheduleExpression"] != "cron(0 6 * * ? *)" {
		t.Errorf("ScheduleExpression = %v", p["ScheduleExpression"])
	}
	pipelineID := logicalID(t, s, s.stack.Fleet.Pipeline.Node().DefaultChild())
	if got := refOf(t, dig(p, "Target", "Arn")); got != pipelineID {
		t.Errorf("target %v, want the Pipeline %s", got, pipelineID)
	}
	want, err := os.ReadFile(filepath.Join("..", "events", "scheduled-input.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got := dig(p, "Target", "Input"); got != string(want) {
		t.Errorf("input %v, want events/scheduled-input.json", got)
	}
	doc, err := pipeline.ParseConfig(want)
	if err != nil {
		t.Fatalf("events/scheduled-input.json is not valid input: %v", err)
	}
	if doc.TeardownAfterMinutes <= 0 {
		t.Errorf("events/scheduled-input.json: teardownAfterMinutes = %d, want a time to live so scheduled fleets expire", doc.TeardownAfterMinutes)
	}
	role := fmt.Sprint(dig(p, "Target", "RoleArn", "Fn::GetAtt").([]any)[0])
	var allowed []string
	for _, st := range roleStatements(s.json, role) {
		for _, a := range strList(st["Action"]) {
			for _, r := range anyList(st["Resource"]) {
				allowed = append(allowed, a+" "+refOf(t, r))
			}
		}
	}
	if w := []string{"states:StartExecution " + pipelineID}; !slices.Equal(allowed, w) {
		t.Errorf("schedule role allows %v, want %v", allowed, w)
	}
}

func TestOutputsAndSynthesizer(t *testing.T) {
	for _, tc := range []struct {
		ctx                  map[string]any
		bootstrapVersionRule bool
	}{{defaultContext, true}, {fullContext, false}} {
		s := synth(t, tc.ctx)
		outputs, _ := s.json["Outputs"].(map[string]any)
		for _, name := range []string{"PipelineStateMachineArn", "TeardownStateMachineArn", "CleanupFunctionName"} {
			if _, ok := outputs[name]; !ok {
				t.Errorf("%v: no output %s", tc.ctx, name)
			}
		}
		_, hasRule := dig(s.json, "Rules", "CheckBootstrapVersion").(map[string]any)
		if hasRule != tc.bootstrapVersionRule {
			t.Errorf("%v: CheckBootstrapVersion rule present = %v, want %v", tc.ctx, hasRule, tc.bootstrapVersionRule)
		}
	}
}

func TestCdkNagAwsSolutionsClean(t *testing.T) {
	for _, ctx := range []map[string]any{defaultContext, fullContext} {
		s := synth(t, ctx)
		a := assertions.Annotations_FromStack(s.stack.Stack)
		nag := assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*"))
		errs, warns := *a.FindError(jsii.String("*"), nag), *a.FindWarning(jsii.String("*"), nag)
		for _, m := range append(errs, warns...) {
			// Printed whole: the message type is deprecated in the Go bindings.
			b, _ := json.Marshal(m)
			t.Errorf("%v: cdk-nag: %s", ctx, b)
		}
	}
}

func TestBadSetupIsReportedBeforeSynth(t *testing.T) {
	tests := []struct {
		name string
		ctx  map[string]any
		want string
	}{
		{"no zips", nil, "run `make build ARCH=arm64` first"},
		{"no x86 zips", map[string]any{"arch": "x86_64"}, "build/amd64/validate.zip is missing"},
		{"unknown architecture", map[string]any{"arch": "sparc"}, `architecture "sparc"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := awscdk.NewApp(&awscdk.AppProps{Context: &tt.ctx})
			_, err := newApp(app, t.TempDir())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("newApp: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// ---- template helpers (internal/cfntest) ----

var (
	resourcesOfType = cfntest.ResourcesOfType
	typeOf          = cfntest.TypeOf
	props           = cfntest.Props
	dig             = cfntest.Dig
	anyList         = cfntest.AnyList
	strList         = cfntest.StrList
	roleStatements  = cfntest.RoleStatements
	actionsOf       = cfntest.ActionsOf
	joinParts       = cfntest.JoinParts
	getAttOf        = cfntest.GetAttOf
	refOf           = cfntest.RefOf
	writeZip        = cfntest.WriteZip
)

func logicalID(t *testing.T, s *synthesized, c any) string {
	t.Helper()
	el, ok := c.(awscdk.CfnElement)
	if !ok {
		t.Fatalf("%T is not a CloudFormation element", c)
	}
	return *s.stack.GetLogicalId(el)
}

// hardCodedPartition matches an ARN whose partition is written out (arn:aws:,
// arn:aws-cn:, arn:aws-us-gov: ...) instead of read from AWS::Partition.
var hardCodedPartition = regexp.MustCompile(`arn:aws(-[a-z]+)*:`)

// The stack deploys in every partition: synthesized for a region of China and of
// GovCloud (and environment-agnostic), its template names no partition itself,
// the state machines' integration ARNs included (arn:${Partition}:states:::...).
func TestSynthesizesForEveryPartition(t *testing.T) {
	for _, tc := range []struct {
		name string
		ctx  map[string]any
	}{
		{"cn-north-1", map[string]any{"region": "cn-north-1"}},
		{"us-gov-west-1", map[string]any{"region": "us-gov-west-1"}},
		{"environment-agnostic", defaultContext},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := synth(t, tc.ctx)
			if r, ok := tc.ctx["region"]; ok && *s.stack.Region() != r {
				t.Errorf("stack region %s, want %s", *s.stack.Region(), r)
			}
			text, err := json.Marshal(s.json)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range hardCodedPartition.FindAllIndex(text, -1) {
				from, to := max(0, m[0]-80), min(len(text), m[1]+80)
				t.Errorf("hard-coded partition %s in the template: …%s…", text[m[0]:m[1]-1], text[from:to])
			}
			for _, sm := range []sfn.StateMachine{s.stack.Fleet.Pipeline, s.stack.Fleet.Teardown} {
				p := props(s.json, logicalID(t, s, sm.Node().DefaultChild()))
				literal, refs := joinParts(t, p["DefinitionString"])
				if !slices.Contains(refs, "AWS::Partition") || !strings.Contains(literal, `"arn:<token>:states:::lambda:invoke"`) {
					t.Errorf("%s: the definition does not name its partition through AWS::Partition (refs %v)", *sm.Node().Id(), refs)
				}
			}
			a := assertions.Annotations_FromStack(s.stack.Stack)
			nag := assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*"))
			for _, m := range append(*a.FindError(jsii.String("*"), nag), *a.FindWarning(jsii.String("*"), nag)...) {
				b, _ := json.Marshal(m)
				t.Errorf("cdk-nag: %s", b)
			}
		})
	}
}

// ebsKeyActions are the KMS actions that a customer-managed default EBS key must allow
// the callers of RunInstances and StartInstances: AWS's "Requirements for Amazon EBS
// encryption → Permissions for users" (CreateGrant limited by GrantIsForAWSResource,
// Decrypt, DescribeKey, GenerateDataKeyWithoutPlaintext, ReEncrypt), and kms:Encrypt
// of AWS's key-user statement for principals that launch encrypted instances.
var ebsKeyActions = []string{
	"kms:CreateGrant", "kms:GrantIsForAWSResource", "kms:Decrypt", "kms:DescribeKey",
	"kms:Encrypt", "kms:GenerateDataKeyWithoutPlaintext", "kms:ReEncrypt",
}

// docs/deploy.md says what a customer-managed default EBS key needs: every action, the
// three places they go, and every function whose role may launch or start instances
// (read from the synthesized roles, so that a new one cannot be left out).
func TestDeployDocListsWhatAnEBSKeyNeeds(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "docs", "deploy.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	const heading = "### A customer-managed default EBS encryption key"
	i := strings.Index(doc, heading)
	if i < 0 {
		t.Fatalf("docs/deploy.md has no section %q", heading)
	}
	section := doc[i+len(heading):]
	if j := strings.Index(section, "\n## "); j >= 0 {
		section = section[:j]
	}
	for _, a := range ebsKeyActions {
		if !strings.Contains(section, "`"+a) {
			t.Errorf("the EBS key section does not name %s", a)
		}
	}
	for _, where := range []string{"**The key policy**", "**The functions' roles**", "**The EC2 service's grants**"} {
		if !strings.Contains(section, where) {
			t.Errorf("the EBS key section does not say what goes in %s", where)
		}
	}
	s := synth(t, defaultContext)
	launchers := 0
	for _, f := range pipeline.Functions {
		fn := props(s.json, logicalID(t, s, s.stack.Fleet.Functions[f.Name].Node().DefaultChild()))
		role := fmt.Sprint(dig(fn, "Role", "Fn::GetAtt").([]any)[0])
		granted := actionsOf(roleStatements(s.json, role))
		if slices.Contains(granted, "ec2:RunInstances") || slices.Contains(granted, "ec2:StartInstances") {
			launchers++
			if !strings.Contains(section, "**"+f.Name+"**") {
				t.Errorf("%s may launch or start instances (encrypted volumes); the EBS key section does not name it", f.Name)
			}
		}
	}
	if launchers == 0 {
		t.Fatal("no function's role grants ec2:RunInstances or ec2:StartInstances: the check cannot fail")
	}
}

// The stack's resources were its own children before the construct (package
// amifleet) held them; with the construct's id "Default" they keep their logical
// ids, so that a deployed stack updates in place instead of replacing its functions,
// roles, log groups and state machines. These ids are from the stack as it was.
func TestLogicalIDsKeptFromTheStackBeforeTheConstruct(t *testing.T) {
	for _, ctx := range []map[string]any{defaultContext, fullContext} {
		s := synth(t, ctx)
		fleet := s.stack.Fleet
		for want, c := range map[string]any{
			"ValidateFunctionC496E7E7": fleet.Functions[pipeline.Validate].Node().DefaultChild(),
			"PipelineC660917D":         fleet.Pipeline.Node().DefaultChild(),
			"Teardown0042FE15":         fleet.Teardown.Node().DefaultChild(),
		} {
			if got := logicalID(t, s, c); got != want {
				t.Errorf("%v: logical id %s, want %s (a deployed stack would replace the resource)", ctx, got, want)
			}
		}
		for _, id := range []string{"CleanupLogs0F08F816", "CleanupRole9B76E1E6", "CleanupRoleDefaultPolicyF2E6A473",
			"TeardownLogs6952C9EE", "TeardownRoleE3927239", "PipelineLogsB6C63DF7", "PipelineRoleD68726F7",
			"PipelineRoleDefaultPolicyC7A05455"} {
			if typeOf(s.json, id) == "" {
				t.Errorf("%v: no resource %s, which the stack had before the construct", ctx, id)
			}
		}
		if ctx["schedule"] != nil {
			if typeOf(s.json, "Schedule83A77FD1") != "AWS::Scheduler::Schedule" {
				t.Errorf("%v: no schedule Schedule83A77FD1", ctx)
			}
		}
	}
}
