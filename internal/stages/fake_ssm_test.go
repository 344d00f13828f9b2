package stages

// The fake cloud's SSM parameters (see fake_test.go).

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

// --- SSM ---------------------------------------------------------------------------------

func (f *fakeSSM) GetParameter(_ context.Context, in *ssm.GetParameterInput, _ ...func(*ssm.Options)) (*ssm.GetParameterOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("GetParameter", in); err != nil {
		return nil, err
	}
	name := aws.ToString(in.Name)
	v, ok := c.params[name]
	if !ok {
		return nil, &ssmtypes.ParameterNotFound{Message: aws.String("parameter " + name + " not found")}
	}
	return &ssm.GetParameterOutput{Parameter: &ssmtypes.Parameter{Name: aws.String(name), Value: aws.String(v),
		Type: ssmtypes.ParameterTypeString}}, nil
}
