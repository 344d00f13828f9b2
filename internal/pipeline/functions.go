package pipeline

// Function is one of amifleet's Lambda functions.
type Function struct {
	// Name is the stage name, as the state machines name the Task that calls it.
	Name string
	// Dir is the folder under lambdas/ that holds its main, and the name of its zip
	// under build/ (build/<Dir>.zip).
	Dir string
	// Placeholder is the ${...} in stepfunctions/*.asl.json that the CDK replaces
	// with the function's ARN.
	Placeholder string
}

// Functions lists every Lambda, in pipeline order. The Makefile builds one zip per
// entry, the CDK deploys one function per entry, and the ASL checks accept only
// these placeholders.
var Functions = []Function{
	{"Validate", "validate", "ValidateFunctionArn"},
	{"CreateSecurityGroups", "create-security-groups", "CreateSecurityGroupsFunctionArn"},
	{"LaunchBase", "launch-base", "LaunchBaseFunctionArn"},
	{"CheckInstances", "check-instances", "CheckInstancesFunctionArn"},
	{"CreateImage", "create-image", "CreateImageFunctionArn"},
	{"CheckImage", "check-image", "CheckImageFunctionArn"},
	{"CreateLoadBalancer", "create-load-balancer", "CreateLoadBalancerFunctionArn"},
	{"CheckLoadBalancer", "check-load-balancer", "CheckLoadBalancerFunctionArn"},
	{"LaunchReplicas", "launch-replicas", "LaunchReplicasFunctionArn"},
	{"RegisterTargets", "register-targets", "RegisterTargetsFunctionArn"},
	{"CheckTargets", "check-targets", "CheckTargetsFunctionArn"},
	{"Verify", "verify", "VerifyFunctionArn"},
	{"Cleanup", "cleanup", "CleanupFunctionArn"},
}
