package pipeline

// Figures of AWS and of amifleet's own stack that the stages and the CDK app both
// read, so that the two cannot drift apart.

// CreateTimeoutSeconds is the Lambda timeout of the longest function that creates
// something (cdk/amifleet/amifleet.go gives none of them more). After a Parallel branch fails,
// Step Functions stops the other branch, but a Lambda it had already invoked runs to
// its end, at most this long, and may still create something: Cleanup's two clean
// looks are then at least this far apart.
const CreateTimeoutSeconds = 120

// EnvCreateTimeout names the variable the stack sets on Cleanup: the create functions'
// timeout in seconds as deployed (CreateTimeoutSeconds unless the stack was given
// another, as the local cloud does).
const EnvCreateTimeout = "AMIFLEET_CREATE_TIMEOUT_SECONDS"

// The quota that bounds the vCPUs of an account's running On-Demand instances of the
// standard families, per region (Service Quotas, service code ec2). Validate reads
// it before anything is created; a launch past it fails with VcpuLimitExceeded.
const (
	VCPUQuotaService = "ec2"
	VCPUQuotaCode    = "L-1216C47A"
	VCPUQuotaName    = "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances"
)
