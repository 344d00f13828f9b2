package main

import (
	"github.com/amifleet/amifleet/cdk/amifleet"
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// AmiFleetStackProps configures NewAmiFleetStack: the stack's own props, and the
// construct's.
type AmiFleetStackProps struct {
	awscdk.StackProps
	amifleet.AmiFleetProps
}

// AmiFleetStack is amifleet's stack: one amifleet.AmiFleet construct, nothing else.
type AmiFleetStack struct {
	awscdk.Stack
	Fleet *amifleet.AmiFleet
}

// FleetID is the construct's id in the stack. The CDK leaves "Default" out of
// logical ids, so the resources keep the ids they had when they were the stack's own
// children: a deployed stack updates in place rather than replacing them.
const FleetID = "Default"

// NewAmiFleetStack builds amifleet's stack around the construct; it returns
// AmiFleetProps.Check's error, if any, before adding anything to scope.
func NewAmiFleetStack(scope constructs.Construct, id string, props *AmiFleetStackProps) (*AmiFleetStack, error) {
	if props == nil {
		props = &AmiFleetStackProps{}
	}
	if err := props.AmiFleetProps.Check(); err != nil {
		return nil, err
	}
	stack := awscdk.NewStack(scope, jsii.String(id), &props.StackProps)
	return &AmiFleetStack{Stack: stack, Fleet: amifleet.NewAmiFleet(stack, FleetID, &props.AmiFleetProps)}, nil
}
