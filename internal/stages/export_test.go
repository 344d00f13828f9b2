package stages

import "testing"

// For the tests in the external package (stages_test).

// NewFakeClients is a new fake cloud (see fake_test.go) as the EC2 and ELBv2 clients
// the stages take, for contract_test.go to hold against moto.
var NewFakeClients = func(t *testing.T) (EC2API, ELBAPI) {
	c := newFakeCloud(t)
	return c.EC2, c.ELB
}
