package localcloud

import (
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// AWSConfig is an AWS SDK configuration for the local cloud at endpoint: every
// service at that one URL, static fake credentials (moto accepts any and puts
// everything in account 123456789012), nothing read from the environment or
// ~/.aws, so that a developer's real profile can never be used by mistake.
func AWSConfig(endpoint, region string) aws.Config {
	return aws.Config{
		Region:       region,
		Credentials:  credentials.NewStaticCredentialsProvider("amifleet-local", "amifleet-local", ""),
		BaseEndpoint: aws.String(endpoint),
	}
}
