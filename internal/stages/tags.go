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

// clientToken is an idempotency token for a create call of the run: the parts
// joined, or, past EC2's 64 characters, a hash of them.
func clientToken(runID string, parts ...string) string {
	t := strings.Join(append([]string{pipeline.NamePrefix + runID}, parts...), "-")
	if len(t) <= 64 {
		return t
	}
	sum := sha256.Sum256([]byte(t))
	return pipeline.NamePrefix + hex.EncodeToString(sum[:])[:40]
}
