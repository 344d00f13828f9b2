package pipeline

import "testing"

func TestLoadBalancerAddress(t *testing.T) {
	for _, tt := range []struct {
		lb   *LoadBalancer
		want string
	}{
		{nil, ""},
		{&LoadBalancer{}, ""},
		{&LoadBalancer{DNSName: "a-1.us-east-1.elb.amazonaws.com"}, "http://a-1.us-east-1.elb.amazonaws.com/"},
		{&LoadBalancer{DNSName: "ignored", URL: "http://127.0.0.1:8080/"}, "http://127.0.0.1:8080/"},
	} {
		if got := tt.lb.Address(); got != tt.want {
			t.Errorf("%+v.Address() = %q, want %q", tt.lb, got, tt.want)
		}
	}
}
