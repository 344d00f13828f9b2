package amifleet_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/amifleet/amifleet/cdk/amifleet"
	"github.com/amifleet/amifleet/cdk/internal/cfntest"
	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

func TestMain(m *testing.M) {
	defer jsii.Close()
	m.Run()
}

// buildDir is a folder with a placeholder zip per stage (synth only hashes them).
func buildDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range pipeline.Functions {
		cfntest.WriteZip(t, filepath.Join(dir, f.Dir()+".zip"), "placeholder bootstrap for "+f.Name)
	}
	return dir
}

const scheduledInput = `{"replicaCount": 3, "teardownAfterMinutes": 60, "tags": {"team": "platform"}}`

// A team's own stack, with a resource of its own, holds the construct deep in its
// tree, with every prop away from its default.
func TestInAUsersOwnStackWithNonDefaultProps(t *testing.T) {
	app := awscdk.NewApp(nil)
	awscdk.Aspects_Of(app).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{Verbose: jsii.Bool(true)}), nil)
	stack := awscdk.NewStack(app, jsii.String("Tools"), &awscdk.StackProps{
		Env: &awscdk.Environment{Region: jsii.String("eu-west-1")},
	})
	awssqs.NewQueue(stack, jsii.String("Jobs"), nil)
	platform := constructs.NewConstruct(stack, jsii.String("Platform"))
	fleet := amifleet.NewAmiFleet(platform, "Fleet", &amifleet.AmiFleetProps{
		Architecture:          amifleet.ArchX8664,
		BuildDir:              buildDir(t),
		Schedule:              "rate(1 day)",
		ScheduledInput:        scheduledInput,
		RefreshSchedule:       "cron(0 2 * * ? *)",
		RefreshScheduledInput: `{"runId": "web"}`,
		CreateTimeoutSeconds:  45,
	})
	tmpl := assertions.Template_FromStack(stack, nil)
	doc := *tmpl.ToJSON()
	id := func(c constructs.IConstruct) string {
		return *stack.GetLogicalId(c.Node().DefaultChild().(awscdk.CfnElement))
	}

	n := float64(len(pipeline.Functions))
	tmpl.ResourceCountIs(jsii.String("AWS::Lambda::Function"), jsii.Number(n))
	tmpl.ResourceCountIs(jsii.String("AWS::StepFunctions::StateMachine"), jsii.Number(3))
	tmpl.ResourceCountIs(jsii.String("AWS::Scheduler::Schedule"), jsii.Number(2))
	tmpl.ResourceCountIs(jsii.String("AWS::IAM::Role"), jsii.Number(n+5))
	tmpl.ResourceCountIs(jsii.String("AWS::DynamoDB::Table"), jsii.Number(1))

	// The nightly refresh starts this construct's Refresh, named after the stack, never
	// more than an hour late.
	refresh := cfntest.Props(doc, id(fleet.RefreshSchedule))
	if got := cfntest.RefOf(t, cfntest.Dig(refresh, "Target", "Arn")); got != id(fleet.Refresh) {
		t.Errorf("refresh schedule target %s, want the Refresh %s", got, id(fleet.Refresh))
	}
	if got := cfntest.Dig(refresh, "Target", "RetryPolicy", "MaximumEventAgeInSeconds"); got != float64(3600) {
		t.Errorf("refresh schedule MaximumEventAgeInSeconds = %v, want 3600", got)
	}
	if got := cfntest.Dig(refresh, "Target", "Input"); got != `{"runId": "web"}` {
		t.Errorf("refresh schedule input %v", got)
	}
	if got := cfntest.Props(doc, id(fleet.Refresh))["StateMachineName"]; got != "Tools-Refresh" {
		t.Errorf("Refresh StateMachineName = %v, want Tools-Refresh (its functions' roles name its executions)", got)
	}
	tmpl.ResourceCountIs(jsii.String("AWS::SQS::Queue"), jsii.Number(1))

	// The creates' timeouts are held to CreateTimeoutSeconds, which Cleanup is told.
	creates := map[string]bool{pipeline.CreateSecurityGroups: true, pipeline.LaunchBase: true,
		pipeline.CreateImage: true, pipeline.CreateLoadBalancer: true, pipeline.LaunchReplicas: true}
	for _, f := range pipeline.Functions {
		p := cfntest.Props(doc, id(fleet.Functions[f.Name]))
		if got := p["Architectures"]; !reflect.DeepEqual(got, []any{"x86_64"}) {
			t.Errorf("%s: Architectures = %v, want [x86_64]", f.Name, got)
		}
		timeout := p["Timeout"].(float64)
		if creates[f.Name] && timeout != 45 {
			t.Errorf("%s creates resources: timeout %v s, want CreateTimeoutSeconds 45", f.Name, timeout)
		}
		if !creates[f.Name] && timeout < 30 {
			t.Errorf("%s: timeout %v s, shortened though it creates nothing", f.Name, timeout)
		}
	}
	if env := cfntest.Dig(cfntest.Props(doc, id(fleet.Functions[pipeline.Cleanup])), "Environment", "Variables", pipeline.EnvCreateTimeout); env != "45" {
		t.Errorf("Cleanup's %s = %v, want 45", pipeline.EnvCreateTimeout, env)
	}

	// The schedule starts this construct's Pipeline with the given input.
	sched := cfntest.Props(doc, id(fleet.Schedule))
	if sched["ScheduleExpression"] != "rate(1 day)" {
		t.Errorf("ScheduleExpression = %v", sched["ScheduleExpression"])
	}
	if got := cfntest.Dig(sched, "Target", "Input"); got != scheduledInput {
		t.Errorf("schedule input %v, want %s", got, scheduledInput)
	}
	pipelineID := id(fleet.Pipeline)
	if got := cfntest.RefOf(t, cfntest.Dig(sched, "Target", "Arn")); got != pipelineID {
		t.Errorf("schedule target %s, want the Pipeline %s", got, pipelineID)
	}

	// Logical ids derive from the construct's path; the outputs keep the plain keys the CLI reads.
	if !strings.HasPrefix(pipelineID, "PlatformFleetPipeline") {
		t.Errorf("Pipeline logical id %s, want it derived from Platform/Fleet", pipelineID)
	}
	outputs := doc["Outputs"].(map[string]any)
	if got := cfntest.RefOf(t, cfntest.Dig(outputs, amifleet.OutputPipelineARN, "Value")); got != pipelineID {
		t.Errorf("output %s = Ref %s, want %s", amifleet.OutputPipelineARN, got, pipelineID)
	}
	if got := cfntest.RefOf(t, cfntest.Dig(outputs, amifleet.OutputTeardownARN, "Value")); got != id(fleet.Teardown) {
		t.Errorf("output %s = Ref %s, want the Teardown", amifleet.OutputTeardownARN, got)
	}
	for _, f := range pipeline.Functions {
		if got := cfntest.Dig(outputs, f.Name+"FunctionName", "Value"); !reflect.DeepEqual(got, map[string]any{"Ref": id(fleet.Functions[f.Name])}) {
			t.Errorf("output %sFunctionName = %v", f.Name, got)
		}
		// The function's own log group, the one its LoggingConfig names.
		group := cfntest.Dig(cfntest.Props(doc, id(fleet.Functions[f.Name])), "LoggingConfig", "LogGroup")
		if got := cfntest.Dig(outputs, f.Name+"LogGroupName", "Value"); group == nil || !reflect.DeepEqual(got, group) {
			t.Errorf("output %sLogGroupName = %v, want the function's LoggingConfig.LogGroup %v", f.Name, got, group)
		}
	}
	// The state machines log to groups named after the user's stack.
	var names []string
	for _, lg := range cfntest.ResourcesOfType(doc, "AWS::Logs::LogGroup") {
		if name, ok := cfntest.Props(doc, lg)["LogGroupName"].(string); ok {
			names = append(names, name)
		}
	}
	if want := []string{"/aws/vendedlogs/states/Tools-Pipeline", "/aws/vendedlogs/states/Tools-Teardown", "/aws/vendedlogs/states/Tools-Refresh"}; !sameSet(names, want) {
		t.Errorf("named log groups %v, want %v", names, want)
	}

	// cdk-nag's AwsSolutions checks ran (the user's bare queue has findings) and find
	// nothing in the construct.
	a := assertions.Annotations_FromStack(stack)
	nag := assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*"))
	queueFindings := 0
	for _, m := range append(*a.FindError(jsii.String("*"), nag), *a.FindWarning(jsii.String("*"), nag)...) {
		b, _ := json.Marshal(m)
		switch {
		case strings.Contains(string(b), "/Tools/Platform/Fleet/"):
			t.Errorf("cdk-nag on the construct: %s", b)
		case strings.Contains(string(b), "/Tools/Jobs"):
			queueFindings++
		}
	}
	if queueFindings == 0 {
		t.Error("cdk-nag found nothing on the bare queue: did its checks run?")
	}
}

func TestOneAmiFleetPerStack(t *testing.T) {
	app := awscdk.NewApp(nil)
	dir := buildDir(t)
	stack := awscdk.NewStack(app, jsii.String("Tools"), nil)
	amifleet.NewAmiFleet(stack, "One", &amifleet.AmiFleetProps{BuildDir: dir})
	msg := panicOf(func() { amifleet.NewAmiFleet(stack, "Two", &amifleet.AmiFleetProps{BuildDir: dir}) })
	if !strings.Contains(msg, "stack Tools already holds an AmiFleet") {
		t.Errorf("a second AmiFleet in a stack: panic %q, want it refused", msg)
	}
	other := awscdk.NewStack(app, jsii.String("Other"), nil)
	if msg := panicOf(func() { amifleet.NewAmiFleet(other, "Two", &amifleet.AmiFleetProps{BuildDir: dir}) }); msg != "" {
		t.Errorf("an AmiFleet in another stack of the app: panic %s", msg)
	}
}

func TestBadPropsRefusedNamingTheField(t *testing.T) {
	dir := buildDir(t)
	tests := []struct {
		name  string
		props *amifleet.AmiFleetProps
		want  string
	}{
		{"nil", nil, "BuildDir is required"},
		{"no build dir", &amifleet.AmiFleetProps{}, "BuildDir is empty"},
		{"no zips", &amifleet.AmiFleetProps{BuildDir: t.TempDir(), Architecture: "amd64"}, "validate.zip is missing: run `make build ARCH=amd64` first"},
		{"architecture", &amifleet.AmiFleetProps{BuildDir: dir, Architecture: "sparc"}, `architecture "sparc": want arm64 or x86_64`},
		{"create timeout too short", &amifleet.AmiFleetProps{BuildDir: dir, CreateTimeoutSeconds: 5}, "CreateTimeoutSeconds 5: want whole seconds from 10 to"},
		{"create timeout too long", &amifleet.AmiFleetProps{BuildDir: dir, CreateTimeoutSeconds: pipeline.CreateTimeoutSeconds + 1}, fmt.Sprintf("CreateTimeoutSeconds %d", pipeline.CreateTimeoutSeconds+1)},
		{"schedule without input", &amifleet.AmiFleetProps{BuildDir: dir, Schedule: "rate(1 day)", ScheduledInput: " \n"}, "ScheduledInput is empty"},
		{"input without schedule", &amifleet.AmiFleetProps{BuildDir: dir, ScheduledInput: scheduledInput}, "props.ScheduledInput is set without a props.Schedule"},
		{"input not the pipeline's", &amifleet.AmiFleetProps{BuildDir: dir, Schedule: "rate(1 day)", ScheduledInput: `{"replicaCont": 2}`}, "ScheduledInput: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.props.Check()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Check: %v, want an error containing %q", err, tt.want)
			}
			stack := awscdk.NewStack(awscdk.NewApp(nil), jsii.String("Tools"), nil)
			if msg := panicOf(func() { amifleet.NewAmiFleet(stack, "Fleet", tt.props) }); msg != err.Error() {
				t.Errorf("NewAmiFleet panicked with %q, want Check's error %q", msg, err)
			}
			if n := len(*stack.Node().Children()); n != 0 {
				t.Errorf("refused props left %d constructs in the stack", n)
			}
		})
	}
	if err := (&amifleet.AmiFleetProps{BuildDir: dir, Schedule: "cron(0 6 * * ? *)", ScheduledInput: scheduledInput,
		CreateTimeoutSeconds: amifleet.MinCreateTimeoutSeconds, Architecture: "amd64"}).Check(); err != nil {
		t.Errorf("Check on good props: %v", err)
	}
}

func panicOf(f func()) (msg string) {
	defer func() {
		if r := recover(); r != nil {
			msg = fmt.Sprint(r)
		}
	}()
	f()
	return ""
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]int{}
	for _, s := range a {
		seen[s]++
	}
	for _, s := range b {
		seen[s]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}
