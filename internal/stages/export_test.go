package stages

import "testing"

// For the tests in the external package (stages_test).

// NewFakeClients is a new fake cloud (see fake_test.go) as the EC2 and ELBv2 clients
// the stages take, for contract_test.go to hold against moto.
// Its default VPC also has a default subnet in us-east-1e, where t3.micro is not
// offered, as moto's has.
var NewFakeClients = func(t *testing.T) (EC2API, ELBAPI) {
	c := newFakeCloud(t)
	c.addSubnet("subnet-0e", fakeDefaultVPC, "us-east-1e", true)
	return c.EC2, c.ELB
}

// DescribeFilters spells EC2 filters for test messages.
var DescribeFilters = describeFilters
