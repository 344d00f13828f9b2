package stages

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amifleet/amifleet/internal/pipeline"
)

// Tags: what every resource of a run carries, the filters that find them again, and
// the idempotency tokens of the create calls.

// tagFilters are the EC2 filters that find a run's resources of one role (every
// role when role is empty), of every generation.
func tagFilters(runID, role string) []ec2types.Filter {
	f := []ec2types.Filter{{Name: aws.String("tag:" + pipeline.TagRunID), Values: []string{runID}}}
	if role != "" {
		f = append(f, ec2types.Filter{Name: aws.String("tag:" + pipeline.TagRole), Values: []string{role}})
	}
	return f
}

// allGenerations, given where a lookup takes a generation, finds the run's resources
// of every generation: Cleanup's and Teardown's, which delete the whole run.
const allGenerations = 0

// generational reports whether role's resources belong to one generation of the run
// (and carry the amifleet:generation tag): the base instance, the image and its
// snapshots, the replicas. The security groups, the load balancer, its listener and
// target group serve every generation of the run (a refresh rolls the fleet behind
// the same load balancer): they carry no generation.
func generational(role string) bool {
	switch role {
	case pipeline.RoleBase, pipeline.RoleImage, pipeline.RoleReplica:
		return true
	}
	return false
}

// genFilters are tagFilters narrowed to one generation (none when gen is
// allGenerations).
//
// Generation 1 adds no filter on the server: the resources of runs made before
// generations existed carry no amifleet:generation tag, and an EC2 filter cannot ask
// for "tag absent or 1". Those runs are all generation 1, so a generation-1 lookup
// takes the untagged ones as its own, and inGeneration drops, on the client, what a
// later generation tagged. A generation n >= 2 filters on tag:amifleet:generation=n
// on the server: nothing untagged is ever of a later generation.
func genFilters(runID, role string, gen int) []ec2types.Filter {
	f := tagFilters(runID, role)
	if gen > pipeline.PipelineGeneration {
		f = append(f, ec2types.Filter{Name: aws.String("tag:" + pipeline.TagGeneration), Values: []string{strconv.Itoa(gen)}})
	}
	return f
}

// inGeneration reports whether a resource's tags put it in generation gen: its
// amifleet:generation tag is gen, or it has none and gen is 1 (see genFilters).
// Every resource is in allGenerations.
func inGeneration(tags []ec2types.Tag, gen int) bool {
	if gen == allGenerations {
		return true
	}
	for _, t := range tags {
		if aws.ToString(t.Key) == pipeline.TagGeneration {
			return aws.ToString(t.Value) == strconv.Itoa(gen)
		}
	}
	return gen == pipeline.PipelineGeneration
}

// generationOf is the generation a resource's tags put it in: its
// amifleet:generation tag, or 1 when it has none (see genFilters).
func generationOf(tags []ec2types.Tag) int {
	for _, t := range tags {
		if aws.ToString(t.Key) == pipeline.TagGeneration {
			if n, err := strconv.Atoi(aws.ToString(t.Value)); err == nil {
				return n
			}
		}
	}
	return pipeline.PipelineGeneration
}

// runTags are the tags of a run's resource, in order: the user's tags, then the
// run id, role, generation (gen > 0, only for generational roles) and Name, which a
// user tag of the same key cannot override (the run finds and deletes its resources
// by them). ec2Tags and elbTags spell them for each API.
func runTags(runID, role string, gen int, userTags map[string]string) [][2]string {
	keys := []string{pipeline.TagRunID, pipeline.TagRole}
	own := map[string]string{
		pipeline.TagRunID: runID,
		pipeline.TagRole:  role,
		pipeline.TagName:  pipeline.GenerationName(runID, role, gen),
	}
	if gen > 0 {
		keys = append(keys, pipeline.TagGeneration)
		own[pipeline.TagGeneration] = strconv.Itoa(gen)
	}
	keys = append(keys, pipeline.TagName)
	tags := make([][2]string, 0, len(userTags)+len(own))
	for _, k := range slices.Sorted(maps.Keys(userTags)) {
		// The generation key is reserved everywhere: a resource without a
		// generation must not seem to have one.
		if _, reserved := own[k]; !reserved && k != pipeline.TagGeneration {
			tags = append(tags, [2]string{k, userTags[k]})
		}
	}
	for _, k := range keys {
		tags = append(tags, [2]string{k, own[k]})
	}
	return tags
}

// ec2Tags are runTags for EC2.
func ec2Tags(runID, role string, gen int, userTags map[string]string) []ec2types.Tag {
	var tags []ec2types.Tag
	for _, kv := range runTags(runID, role, gen, userTags) {
		tags = append(tags, ec2types.Tag{Key: aws.String(kv[0]), Value: aws.String(kv[1])})
	}
	return tags
}

// tagSpecs tags, at create time, every resource type given (an instance and its
// volumes, an image and its snapshots) as the run's resource of role, and, for a
// generational role, of the document's generation.
func tagSpecs(doc pipeline.Document, role string, resourceTypes ...ec2types.ResourceType) []ec2types.TagSpecification {
	gen := 0
	if generational(role) {
		gen = doc.Gen()
	}
	specs := make([]ec2types.TagSpecification, 0, len(resourceTypes))
	for _, rt := range resourceTypes {
		specs = append(specs, ec2types.TagSpecification{ResourceType: rt, Tags: ec2Tags(doc.RunID, role, gen, doc.Config.Tags)})
	}
	return specs
}

// tokenSeed is the seed of a run's idempotency tokens (doc.tokenSeed): a hash of the
// execution's id and start time. Every retry within one execution gets the document
// Validate made, so the same seed; any two executions differ in one or the other (an
// execution name may be used again 90 days on, and run ids are derived from names).
func tokenSeed(executionID, startTime string) string {
	sum := sha256.Sum256([]byte(executionID + "\n" + startTime))
	return hex.EncodeToString(sum[:16])
}

// clientToken is the idempotency token of one create call of the run (RunInstances'
// ClientToken): the seed and the parts that tell the run's calls apart, joined, or,
// past EC2's 64 characters, their SHA-256 in hex (64 characters). EC2 keeps a token
// for a while, even for terminated instances: a token must name one request only.
func clientToken(seed string, parts ...string) string {
	t := strings.Join(append([]string{seed}, parts...), "-")
	if len(t) <= 64 {
		return t
	}
	sum := sha256.Sum256([]byte(t))
	return hex.EncodeToString(sum[:])
}

// genToken is clientToken for a create call of the document's generation: the
// parts of generation 1 are as they were before generations (a retry of a run
// started before them stays idempotent); a later generation adds "g<n>", so that a
// refresh that shares the run's seed never replays generation 1's request.
func genToken(seed string, doc pipeline.Document, parts ...string) string {
	if gen := doc.Gen(); gen > pipeline.PipelineGeneration {
		parts = append([]string{"g" + strconv.Itoa(gen)}, parts...)
	}
	return clientToken(seed, parts...)
}

// tokenSeedOf is the document's seed; a document without one did not come from
// Validate.
func tokenSeedOf(doc pipeline.Document) (string, error) {
	if doc.TokenSeed == "" {
		return "", notYet("tokenSeed", pipeline.Validate)
	}
	return doc.TokenSeed, nil
}
