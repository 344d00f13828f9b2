package stages

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"os"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/smithy-go/middleware"

	"github.com/amifleet/amifleet/internal/pipeline"
)

// The IAM actions each function calls, recorded from every AWS call this package's
// tests drive (the fakes' and moto's), into testdata/iam-actions.json. cdk's tests hold
// each function's role to that file: nothing called may be missing, and nothing granted
// may be unused without a written reason. A stage that starts calling a new action
// fails TestMain here until the file is updated with
//
//	go test ./internal/stages -update-iam
//
// and then cdk's test until iam.go grants it.

const iamGolden = "testdata/iam-actions.json"

var updateIAM = flag.Bool("update-iam", false, "rewrite "+iamGolden+" from the AWS calls the tests make")

var iamCalls = struct {
	sync.Mutex
	byFunction map[string]map[string]bool
}{byFunction: map[string]map[string]bool{}}

// iamPrefix is the IAM service prefix of an SDK service id.
var iamPrefix = map[string]string{
	"EC2":                       "ec2",
	"Elastic Load Balancing v2": "elasticloadbalancing",
	"SSM":                       "ssm",
	"Service Quotas":            "servicequotas",
	"DynamoDB":                  "dynamodb",
	"SFN":                       "states",
}

// RecordAWSCall notes that the function running on this goroutine's stack called
// service's operation. Calls made outside any function (a test's own setup) are not
// the functions' and are left out.
func RecordAWSCall(serviceID, operation string) {
	fn := callingFunction()
	if fn == "" {
		return
	}
	prefix, ok := iamPrefix[serviceID]
	if !ok {
		panic(fmt.Sprintf("no IAM prefix for the SDK service %q: add it to iamPrefix", serviceID))
	}
	iamCalls.Lock()
	defer iamCalls.Unlock()
	if iamCalls.byFunction[fn] == nil {
		iamCalls.byFunction[fn] = map[string]bool{}
	}
	iamCalls.byFunction[fn][prefix+":"+operation] = true
}

// RecordingMiddleware records every call an SDK client makes (for clients on moto).
func RecordingMiddleware(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("amifleet-iam-record",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			RecordAWSCall(awsmiddleware.GetServiceID(ctx), awsmiddleware.GetOperationName(ctx))
			return next.HandleInitialize(ctx, in)
		}), middleware.After)
}

// recordFake records a call to the fake cloud, whose methods are named after the
// operations of the interface they implement.
func recordFake(method string) {
	switch {
	case hasMethod[EC2API](method):
		RecordAWSCall("EC2", method)
	case hasMethod[ELBAPI](method):
		RecordAWSCall("Elastic Load Balancing v2", method)
	case hasMethod[SSMAPI](method):
		RecordAWSCall("SSM", method)
	case hasMethod[QuotasAPI](method):
		RecordAWSCall("Service Quotas", method)
	}
}

func hasMethod[I any](name string) bool {
	_, ok := reflect.TypeFor[I]().MethodByName(name)
	return ok
}

// callingFunction is the outermost (*Stages).<Function> on the stack: the Lambda
// whose code made the call, also when the call is made by a helper or an undo.
func callingFunction() string {
	pcs := make([]uintptr, 64)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(2, pcs)])
	const method = "internal/stages.(*Stages)."
	found := ""
	for {
		f, more := frames.Next()
		if i := strings.Index(f.Function, method); i >= 0 {
			name := strings.TrimSuffix(f.Function[i+len(method):], "-fm")
			if slices.ContainsFunc(pipeline.Functions, func(fn pipeline.Function) bool { return fn.Name == name }) {
				found = name
			}
		}
		if !more {
			return found
		}
	}
}

// checkIAMGolden compares what the tests called with the golden file, or rewrites it.
// complete says the whole package ran (no -run, -skip or -short), so that an action
// never called is an unused one rather than one whose test did not run.
func checkIAMGolden(complete bool) error {
	iamCalls.Lock()
	defer iamCalls.Unlock()
	got := map[string][]string{}
	for _, f := range pipeline.Functions {
		got[f.Name] = slices.Sorted(maps.Keys(iamCalls.byFunction[f.Name]))
		if got[f.Name] == nil {
			got[f.Name] = []string{}
		}
	}
	if *updateIAM {
		if !complete {
			return fmt.Errorf("-update-iam needs the whole package to run (no -run, -skip or -short)")
		}
		b, _ := json.MarshalIndent(got, "", "  ")
		return os.WriteFile(iamGolden, append(b, '\n'), 0o644)
	}
	b, err := os.ReadFile(iamGolden)
	if err != nil {
		return err
	}
	var want map[string][]string
	if err := json.Unmarshal(b, &want); err != nil {
		return fmt.Errorf("%s: %w", iamGolden, err)
	}
	var problems []string
	for _, f := range pipeline.Functions {
		for _, a := range got[f.Name] {
			if !slices.Contains(want[f.Name], a) {
				problems = append(problems, fmt.Sprintf("%s calls %s, which %s does not list", f.Name, a, iamGolden))
			}
		}
		if complete {
			for _, a := range want[f.Name] {
				if !slices.Contains(got[f.Name], a) {
					problems = append(problems, fmt.Sprintf("%s lists %s for %s, which no test saw it call", iamGolden, a, f.Name))
				}
			}
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s\n(after a deliberate change: go test ./internal/stages -update-iam, then grant or revoke it in cdk/amifleet/iam.go)", strings.Join(problems, "\n"))
	}
	return nil
}

// completeRun reports whether every test of the package ran.
func completeRun() bool {
	for _, name := range []string{"test.run", "test.skip"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" {
			return false
		}
	}
	if f := flag.Lookup("test.short"); f != nil && f.Value.String() == "true" {
		return false
	}
	return true
}

// For TestMain, in the external test package.
var (
	CheckIAMGolden = checkIAMGolden
	CompleteRun    = completeRun
)
