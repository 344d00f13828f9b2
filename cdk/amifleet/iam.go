package amifleet

import (
	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

// grant is one IAM statement of a stage's role.
type grant struct {
	actions    []string
	resources  []string
	conditions map[string]any
}

func (g grant) statement() awsiam.PolicyStatement {
	props := &awsiam.PolicyStatementProps{
		Actions:   jsii.Strings(g.actions...),
		Resources: jsii.Strings(g.resources...),
	}
	if g.conditions != nil {
		c := map[string]any(g.conditions)
		props.Conditions = &c
	}
	return awsiam.NewPolicyStatement(props)
}

// Conditions on the run tag. Where an API takes tags at create time, the create is
// allowed only with the amifleet:run-id tag in the request; a change or delete only
// on a resource that carries it. So these roles cannot touch what the pipeline did
// not create.
var (
	runTagOnCreate = map[string]any{"Null": map[string]any{"aws:RequestTag/" + pipeline.TagRunID: "false"}}
	runTagged      = map[string]any{"Null": map[string]any{"aws:ResourceTag/" + pipeline.TagRunID: "false"}}
)

// ec2CreateAction allows tagging only as part of the named create call.
func ec2CreateAction(actions ...string) map[string]any {
	return map[string]any{"StringEquals": map[string]any{"ec2:CreateAction": actions}}
}

func elbCreateAction(actions ...string) map[string]any {
	return map[string]any{"StringEquals": map[string]any{"elasticloadbalancing:CreateAction": actions}}
}

// describe is a read-only call on "*": EC2's and ELBv2's Describe* actions, and the
// X-Ray calls, support no resource-level permissions, so Resource "*" is the only
// value AWS accepts for them.
func describe(actions ...string) grant {
	return grant{actions: actions, resources: []string{"*"}}
}

// arns builds the ARN patterns of the stack's account and region; table is the runs
// table's ARN, refreshExecutions the pattern of the Refresh state machine's
// executions.
type arns struct{ partition, region, account, table, refreshExecutions string }

func newARNs() arns {
	return arns{partition: *awscdk.Aws_PARTITION(), region: *awscdk.Aws_REGION(), account: *awscdk.Aws_ACCOUNT_ID()}
}

// ec2 is an account-owned EC2 resource ("instance/*").
func (a arns) ec2(resource string) string {
	return "arn:" + a.partition + ":ec2:" + a.region + ":" + a.account + ":" + resource
}

// ec2Regional is an EC2 resource whose ARN has no account (images, snapshots).
func (a arns) ec2Regional(resource string) string {
	return "arn:" + a.partition + ":ec2:" + a.region + "::" + resource
}

// elb is an ELBv2 resource; names start with amifleet- (pipeline.ResourceName).
func (a arns) elb(resource string) string {
	return "arn:" + a.partition + ":elasticloadbalancing:" + a.region + ":" + a.account + ":" + resource
}

// serviceQuota is one quota of a service in Service Quotas.
func (a arns) serviceQuota(serviceCode, quotaCode string) string {
	return "arn:" + a.partition + ":servicequotas:" + a.region + ":" + a.account + ":" + serviceCode + "/" + quotaCode
}

const namePattern = pipeline.NamePrefix + "*"

// runInstances lets a stage launch run-tagged instances (with their run-tagged root
// volumes) into the run's security groups. images are the AMIs it may launch from.
func (a arns) runInstances(images grant) []grant {
	return []grant{
		{
			actions:    []string{"ec2:RunInstances"},
			resources:  []string{a.ec2("instance/*"), a.ec2("volume/*")},
			conditions: runTagOnCreate,
		},
		{
			actions:    []string{"ec2:RunInstances"},
			resources:  []string{a.ec2("security-group/*")},
			conditions: runTagged,
		},
		{
			// Subnets and key pairs are the user's (config.subnetIds, config.keyName);
			// the network interface is created with the instance (the replicas name its
			// subnet, groups and public address in NetworkInterfaces). Its
			// ec2:AssociatePublicIpAddress is not pinned: config.sshCidrs decides it at
			// run time.
			actions:   []string{"ec2:RunInstances"},
			resources: []string{a.ec2("subnet/*"), a.ec2("network-interface/*"), a.ec2("key-pair/*")},
		},
		images,
		{
			actions:    []string{"ec2:CreateTags"},
			resources:  []string{a.ec2("instance/*"), a.ec2("volume/*")},
			conditions: ec2CreateAction("RunInstances"),
		},
	}
}

// permissions lists, per stage, the AWS actions its code calls (internal/stages),
// beyond writing its own logs and X-Ray traces. A stage that calls something new
// needs it added here, and in the table of TestFunctionRolesAllowExactlyTheirActions
// (cdk/stack_test.go).
var permissions = map[string]func(arns) []grant{
	// Validate checks what the run will need against the account.
	pipeline.Validate: checkFleet,

	pipeline.CreateSecurityGroups: func(a arns) []grant {
		return []grant{
			describe("ec2:DescribeVpcs", "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups"),
			{
				actions:    []string{"ec2:CreateSecurityGroup"},
				resources:  []string{a.ec2("security-group/*")},
				conditions: runTagOnCreate,
			},
			{
				// The VPC the group is created in: the default VPC or config.subnetIds'.
				actions:   []string{"ec2:CreateSecurityGroup"},
				resources: []string{a.ec2("vpc/*")},
			},
			{
				actions:    []string{"ec2:AuthorizeSecurityGroupIngress"},
				resources:  []string{a.ec2("security-group/*")},
				conditions: runTagged,
			},
			{
				actions:    []string{"ec2:CreateTags"},
				resources:  []string{a.ec2("security-group/*")},
				conditions: ec2CreateAction("CreateSecurityGroup"),
			},
		}
	},

	pipeline.LaunchBase: func(a arns) []grant {
		return append([]grant{
			describe("ec2:DescribeInstances", "ec2:DescribeImages"),
			{
				// config.imageParameter: the public parameters that name the latest AMIs.
				actions:   []string{"ssm:GetParameter"},
				resources: []string{"arn:" + a.partition + ":ssm:" + a.region + "::parameter/aws/service/*"},
			},
		}, a.runInstances(grant{
			// The base image is public (Amazon Linux) or the user's config.imageId.
			actions:   []string{"ec2:RunInstances"},
			resources: []string{a.ec2Regional("image/*")},
		})...)
	},

	pipeline.CheckInstancesRunning: func(arns) []grant {
		return []grant{describe("ec2:DescribeInstances")}
	},

	pipeline.CheckBaseStopped: func(a arns) []grant {
		return []grant{
			describe("ec2:DescribeInstances"),
			{
				// The console output of a base instance whose script did not finish.
				actions:    []string{"ec2:GetConsoleOutput"},
				resources:  []string{a.ec2("instance/*")},
				conditions: runTagged,
			},
		}
	},

	pipeline.CreateImage: func(a arns) []grant {
		return []grant{
			describe("ec2:DescribeImages"),
			{
				actions:    []string{"ec2:CreateImage"},
				resources:  []string{a.ec2("instance/*")},
				conditions: runTagged,
			},
			{
				actions:    []string{"ec2:CreateImage"},
				resources:  []string{a.ec2Regional("image/*"), a.ec2Regional("snapshot/*")},
				conditions: runTagOnCreate,
			},
			{
				actions:    []string{"ec2:CreateTags"},
				resources:  []string{a.ec2Regional("image/*"), a.ec2Regional("snapshot/*")},
				conditions: ec2CreateAction("CreateImage"),
			},
		}
	},

	pipeline.CheckImageAvailable: func(arns) []grant {
		return []grant{describe("ec2:DescribeImages")}
	},

	pipeline.CreateLoadBalancer: func(a arns) []grant {
		tg := a.elb("targetgroup/" + namePattern + "/*")
		lb := a.elb("loadbalancer/app/" + namePattern + "/*")
		listener := a.elb("listener/app/" + namePattern + "/*/*")
		return []grant{
			describe("elasticloadbalancing:DescribeTargetGroups", "elasticloadbalancing:DescribeLoadBalancers",
				"elasticloadbalancing:DescribeListeners", "elasticloadbalancing:DescribeTags",
				"elasticloadbalancing:DescribeTargetGroupAttributes"),
			{
				// The target group's deregistration delay, set right after its create.
				actions:    []string{"elasticloadbalancing:ModifyTargetGroupAttributes"},
				resources:  []string{tg},
				conditions: runTagged,
			},
			{
				actions:    []string{"elasticloadbalancing:CreateTargetGroup", "elasticloadbalancing:CreateLoadBalancer"},
				resources:  []string{tg, lb},
				conditions: runTagOnCreate,
			},
			{
				actions:    []string{"elasticloadbalancing:CreateListener"},
				resources:  []string{lb},
				conditions: runTagged,
			},
			{
				actions:    []string{"elasticloadbalancing:CreateListener"},
				resources:  []string{listener},
				conditions: runTagOnCreate,
			},
			{
				// ELBv2 checks AddTags for tags given at create time.
				actions:   []string{"elasticloadbalancing:AddTags"},
				resources: []string{tg, lb, listener},
				conditions: elbCreateAction("CreateTargetGroup", "CreateLoadBalancer",
					"CreateListener"),
			},
			{
				// The first load balancer of an account creates ELB's service-linked role.
				actions: []string{"iam:CreateServiceLinkedRole"},
				resources: []string{"arn:" + a.partition + ":iam::" + a.account +
					":role/aws-service-role/elasticloadbalancing.amazonaws.com/AWSServiceRoleForElasticLoadBalancing"},
				conditions: map[string]any{"StringEquals": map[string]any{
					"iam:AWSServiceName": "elasticloadbalancing.amazonaws.com"}},
			},
		}
	},

	pipeline.CheckLoadBalancerActive: func(arns) []grant {
		return []grant{describe("elasticloadbalancing:DescribeLoadBalancers")}
	},

	pipeline.LaunchReplicas: func(a arns) []grant {
		return append([]grant{
			describe("ec2:DescribeInstances", "ec2:DescribeImages"),
			{
				// The base instance joins the fleet again (config.keepBaseInstance).
				actions:    []string{"ec2:StartInstances"},
				resources:  []string{a.ec2("instance/*")},
				conditions: runTagged,
			},
		}, a.runInstances(grant{
			// Replicas launch from the run's own AMI only.
			actions:    []string{"ec2:RunInstances"},
			resources:  []string{a.ec2Regional("image/*")},
			conditions: runTagged,
		})...)
	},

	pipeline.RegisterTargets: func(a arns) []grant {
		return []grant{{
			actions:    []string{"elasticloadbalancing:RegisterTargets"},
			resources:  []string{a.elb("targetgroup/" + namePattern + "/*")},
			conditions: runTagged,
		}}
	},

	pipeline.CheckTargetsHealthy: func(arns) []grant {
		return []grant{describe("elasticloadbalancing:DescribeTargetHealth")}
	},

	// Verify sends HTTP requests to the load balancer's DNS name: no AWS call.
	pipeline.Verify: func(arns) []grant { return nil },

	// RecordRun writes the run's record, once.
	pipeline.RecordRun: func(a arns) []grant {
		return []grant{{actions: []string{"dynamodb:PutItem"}, resources: []string{a.table}}}
	},

	// PrepareRefresh reads the run's record, checks the new generation as Validate
	// does, asks whether the refresh that holds the run still runs, and takes the lock.
	pipeline.PrepareRefresh: func(a arns) []grant {
		return append(checkFleet(a),
			grant{actions: []string{"dynamodb:GetItem", "dynamodb:UpdateItem"}, resources: []string{a.table}},
			grant{actions: []string{"states:DescribeExecution"}, resources: []string{a.refreshExecutions}})
	},

	// CommitGeneration makes the new generation serve, if its refresh holds the run.
	pipeline.CommitGeneration: func(a arns) []grant {
		return []grant{{actions: []string{"dynamodb:GetItem", "dynamodb:UpdateItem"}, resources: []string{a.table}}}
	},

	// PruneGenerations drains and deletes the generations that do not serve, and
	// frees the run's lock.
	pipeline.PruneGenerations: func(a arns) []grant {
		return []grant{
			describe("ec2:DescribeInstances", "ec2:DescribeImages", "ec2:DescribeSnapshots",
				"elasticloadbalancing:DescribeTargetHealth"),
			{actions: []string{"dynamodb:GetItem", "dynamodb:UpdateItem"}, resources: []string{a.table}},
			{
				actions:    []string{"elasticloadbalancing:DeregisterTargets"},
				resources:  []string{a.elb("targetgroup/" + namePattern + "/*")},
				conditions: runTagged,
			},
			{
				actions:    []string{"ec2:TerminateInstances", "ec2:DeregisterImage", "ec2:DeleteSnapshot"},
				resources:  []string{a.ec2("instance/*"), a.ec2Regional("image/*"), a.ec2Regional("snapshot/*")},
				conditions: runTagged,
			},
		}
	},

	pipeline.Cleanup: func(a arns) []grant {
		return []grant{
			// The run's record: marked first (no refresh starts), deleted last.
			{actions: []string{"dynamodb:UpdateItem", "dynamodb:DeleteItem"}, resources: []string{a.table}},
			describe("ec2:DescribeInstances", "ec2:DescribeImages", "ec2:DescribeSnapshots",
				"ec2:DescribeSecurityGroups", "elasticloadbalancing:DescribeTargetGroups",
				"elasticloadbalancing:DescribeLoadBalancers", "elasticloadbalancing:DescribeListeners",
				"elasticloadbalancing:DescribeTags"),
			{
				actions: []string{"ec2:TerminateInstances", "ec2:DeregisterImage", "ec2:DeleteSnapshot",
					"ec2:DeleteSecurityGroup"},
				resources: []string{a.ec2("instance/*"), a.ec2Regional("image/*"),
					a.ec2Regional("snapshot/*"), a.ec2("security-group/*")},
				conditions: runTagged,
			},
			{
				actions: []string{"elasticloadbalancing:DeleteListener", "elasticloadbalancing:DeleteLoadBalancer",
					"elasticloadbalancing:DeleteTargetGroup"},
				resources: []string{a.elb("listener/app/" + namePattern + "/*/*"),
					a.elb("loadbalancer/app/" + namePattern + "/*"), a.elb("targetgroup/" + namePattern + "/*")},
				conditions: runTagged,
			},
		}
	},
}

// checkFleet is what Validate (and PrepareRefresh, for a new generation) reads to
// check a fleet against the account: the subnets (given or the default VPC's),
// config.imageId, the instance type, the zones that offer it, and the vCPU quota
// beside the instances already running. It creates nothing.
func checkFleet(a arns) []grant {
	return []grant{
		describe("ec2:DescribeVpcs", "ec2:DescribeSubnets", "ec2:DescribeImages", "ec2:DescribeInstanceTypes",
			"ec2:DescribeInstanceTypeOfferings", "ec2:DescribeInstances"),
		{
			// The one quota it reads: running On-Demand standard instances' vCPUs.
			actions:   []string{"servicequotas:GetServiceQuota"},
			resources: []string{a.serviceQuota(pipeline.VCPUQuotaService, pipeline.VCPUQuotaCode)},
		},
	}
}

// reasonWildcards justifies the "*" in the stage roles' resources (cdk-nag
// AwsSolutions-IAM5).
const reasonWildcards = "Describe calls on EC2 and ELBv2, and X-Ray's PutTraceSegments/PutTelemetryRecords, " +
	"support no resource-level permissions, so Resource * is the only value AWS accepts. " +
	"Instances, volumes, security groups, AMIs, snapshots, target groups and load balancers do not " +
	"exist before the run creates them, so their ARNs end in *; every create is allowed only with " +
	"the amifleet:run-id tag in the request (aws:RequestTag) and every change or delete only on a " +
	"resource carrying it (aws:ResourceTag), ELBv2 names are limited to the amifleet- prefix, and " +
	"CreateTags only as part of the create call (ec2:CreateAction). Subnets, VPCs, key pairs and " +
	"base AMIs are the user's and are only referenced, never changed. A refresh describes the " +
	"executions of this stack's own Refresh state machine only (execution:<stack>-Refresh:*)."

// wildcardFindings are the AwsSolutions-IAM5 findings that reasonWildcards covers:
// Resource * and the EC2, ELBv2 and SSM ARN patterns above. An action wildcard is
// never suppressed.
func wildcardFindings() *[]any {
	return &[]any{
		"Resource::*",
		&cdknag.RegexAppliesTo{Regex: jsii.String(`/^Resource::arn:<AWS::Partition>:(ec2|elasticloadbalancing|ssm):<AWS::Region>:(<AWS::AccountId>)?:[a-z/-]+(amifleet-)?\*(\/\*)*$/g`)},
		&cdknag.RegexAppliesTo{Regex: jsii.String(`/^Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:[A-Za-z0-9-]+-Refresh:\*$/g`)},
	}
}
