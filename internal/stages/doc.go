// Package stages is the logic of every amifleet Lambda: one file per stage, named after
// it (pipeline.Function.File), each with the method that creates its part of the fleet
// beside the undo that deletes it, as in Packer's multistep steps. The Lambdas' mains
// (lambdas/<stage>/main.go) are one line: stages.Start with the stage's name, which
// builds a Stages from the environment and hands its method to lambda.Start.
//
// Shared parts: clients.go (the narrow AWS interfaces), handler.go (Start, logging, and
// the error classification every stage's error goes through), awserrors.go (the AWS
// error codes amifleet tells apart), poll.go (the check Lambdas' common shape), tags.go
// (run tags, idempotency tokens, lookups by tag) and terminate.go.
package stages
