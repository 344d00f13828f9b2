package stages

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amifleet/amifleet/internal/pipeline"
)

// Tags: what every resource of a run carries, the filters that find them again, and
// the idempotency tokens of the create calls.

// tagFilters are the EC2 filters that find a run's resources of one role (every
// role when role is empty).
func tagFilters(runID, role string) []ec2types.Filter {
	f := []ec2types.Filter{{Name: aws.String("tag:" + pipeline.TagRunID), Values: []string{runID}}}
	if role != "" {
		f = append(f, ec2types.Filter{Name: aws.String("tag:" + pipeline.TagRole), Values: []string{role}})
	}
	return f
}

// runTags are the tags of a run's resource, in order: the user's tags, then the
// run id, role and Name, which a user tag of the same key cannot override (the run
// finds and deletes its resources by them). ec2Tags and elbTags spell them for
// each API.
func runTags(runID, role string, userTags map[string]string) [][2]string {
	own := map[string]string{
		pipeline.TagRunID: runID,
		pipeline.TagRole:  role,
		pipeline.TagName:  pipeline.ResourceName(runID, role),
	}
	tags := make([][2]string, 0, len(userTags)+len(own))
	for _, k := range slices.Sorted(maps.Keys(userTags)) {
		if _, reserved := own[k]; !reserved {
			tags = append(tags, [2]string{k, userTags[k]})
		}
	}
	for _, k := range []string{pipeline.TagRunID, pipeline.TagRole, pipeline.TagName} {
		tags = append(tags, [2]string{k, own[k]})
	}
	return tags
}

// ec2Tags are runTags for EC2.
func ec2Tags(runID, role string, userTags map[string]string) []ec2types.Tag {
	var tags []ec2types.Tag
	for _, kv := range runTags(runID, role, userTags) {
		tags = append(tags, ec2types.Tag{Key: aws.String(kv[0]), Value: aws.String(kv[1])})
	}
	return tags
}

// tagSpecs tags, at create time, every resource type given (an instance and its
// volumes, an image and its snapshots) as the run's resource of role.
func tagSpecs(doc pipeline.Document, role string, resourceTypes ...ec2types.ResourceType) []ec2types.TagSpecification {
	specs := make([]ec2types.TagSpecification, 0, len(resourceTypes))
	for _, rt := range resourceTypes {
		specs = append(specs, ec2types.TagSpecification{ResourceType: rt, Tags: ec2Tags(doc.RunID, role, doc.Config.Tags)})
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

// tokenSeedOf is the document's seed; a document without one did not come from
// Validate.
func tokenSeedOf(doc pipeline.Document) (string, error) {
	if doc.TokenSeed == "" {
		return "", notYet("tokenSeed", pipeline.Validate)
	}
	return doc.TokenSeed, nil
}
