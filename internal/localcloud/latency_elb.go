package localcloud

// AWS's timing on the load balancer side (latency.go has the model). With a model:
//
//   - a load balancer is provisioning until CreateLoadBalancer + OpLoadBalancerActive:
//     DescribeLoadBalancers says so (moto says active at once), its stand-in refuses
//     connections on its local port, the gateway as an HTTP proxy answers for its DNS
//     name as for a name that does not resolve yet (502), and its targets are not
//     health-checked (they stay initial) until it is active;
//   - CreateTargetGroup and CreateListener answer after OpCreateTargetGroupAnswer and
//     OpCreateListenerAnswer (each call waits alone: the others go on);
//   - after DeleteLoadBalancer its security groups stay in use (DependencyViolation)
//     until OpLoadBalancerENIsGone's draw, instead of Strictness.ENILinger
//     (strict_eni.go), with or without the strict checks.
//
// A target's registration to healthy is not modelled: the data plane's real health
// checks take it, at the target group's interval on the time scale.

import (
	"bytes"
	"net"
	"net/http"
	"os"
	"regexp"
	"sync"
	"syscall"
	"time"

	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
)

// latencyBefore holds or answers an ELB call the model times, before it goes to moto;
// true when it answered.
func (g *Gateway) latencyBefore(w http.ResponseWriter, r *http.Request, call apiCall) bool {
	if g.latency() == nil {
		return false
	}
	var op LatencyOp
	var key string
	switch call.key() {
	case "elasticloadbalancing:CreateTargetGroup":
		op, key = OpCreateTargetGroupAnswer, call.Form.Get("Name")
	case "elasticloadbalancing:CreateListener":
		op, key = OpCreateListenerAnswer, call.Form.Get("LoadBalancerArn")+":"+call.Form.Get("Port")
	case "elasticloadbalancing:DeleteLoadBalancer":
		// The strict ENILinger check notes the groups itself (strict_ec2.go).
		if g.modelsENIs() && g.Strictness().ENILinger == 0 {
			g.noteLoadBalancerGroups(r.Context(), call)
		}
		return false
	case "ec2:DeleteSecurityGroup":
		return g.modelsENIs() && g.Strictness().ENILinger == 0 && g.groupInUse(w, call)
	default:
		return false
	}
	local, _ := g.modelled(op, key, "", time.Now())
	t := time.NewTimer(local)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	case <-g.ctx.Done():
	}
	return false
}

// modelsENIs reports whether the model times a deleted load balancer's network
// interfaces.
func (g *Gateway) modelsENIs() bool {
	_, ok := g.latency().Dist(OpLoadBalancerENIsGone, "")
	return ok
}

// enisGoneAt is when the network interfaces of the load balancer arn, deleted at now,
// are gone: OpLoadBalancerENIsGone's draw when the model has it, else
// Strictness.ENILinger after now.
func (g *Gateway) enisGoneAt(arn string, now time.Time) time.Time {
	if g.modelsENIs() {
		_, at := g.modelled(OpLoadBalancerENIsGone, arn, "", now)
		return at
	}
	return now.Add(g.Strictness().ENILinger)
}

// loadBalancerDeleted keeps a deleted load balancer's groups in use for the model's
// time when the strict ENILinger check does not (strictSaw does it when it does).
func (g *Gateway) loadBalancerDeleted(call apiCall) {
	if g.modelsENIs() && g.Strictness().ENILinger == 0 {
		g.lingerAfterDelete(call)
	}
}

// loadBalancerCreated starts a new load balancer's provisioning.
func (g *Gateway) loadBalancerCreated(call apiCall, body []byte) {
	if g.latency() == nil {
		return
	}
	now := time.Now()
	role, gen := requestRole(call.Form)
	for _, arn := range xmlValues(body, "LoadBalancerArn") {
		if oneOfAKind(role) {
			g.drawByRole(arn, role, gen)
		}
		g.modelled(OpLoadBalancerActive, arn, "", now)
	}
}

// loadBalancerActive reports whether the load balancer arn has finished provisioning
// (always, for one the model did not time).
func (g *Gateway) loadBalancerActive(arn string) bool {
	at, ok := g.readyAt(OpLoadBalancerActive, arn)
	return !ok || !time.Now().Before(at)
}

// awaitingLoadBalancer reports whether the target th of a's listener waits for a to
// finish provisioning (its nodes, which check targets, do not exist yet), and shows
// it registering meanwhile.
func (g *Gateway) awaitingLoadBalancer(a *albStandIn, th *targetHealth) bool {
	if a == nil || g.loadBalancerActive(a.arn) {
		return false
	}
	g.lbs.mu.Lock()
	defer g.lbs.mu.Unlock()
	if th.state == string(elbtypes.TargetHealthStateEnumUnused) {
		th.state, th.reason, th.description = string(elbtypes.TargetHealthStateEnumInitial),
			string(elbtypes.TargetHealthReasonEnumRegistrationInProgress), "Target registration is in progress"
	}
	return true
}

var (
	lbArnElement   = regexp.MustCompile(`<LoadBalancerArn>([^<]*)</LoadBalancerArn>`)
	lbActiveState  = regexp.MustCompile(`<State>(\s*)<Code>active</Code>`)
	provisioningTo = []byte(`<State>${1}<Code>provisioning</Code>`)
)

// rewriteLoadBalancerStates makes DescribeLoadBalancers show provisioning the load
// balancers that are not active yet; nil leaves moto's answer as it is (always, for
// load balancers the model did not time). Each load balancer's State follows its
// LoadBalancerArn, before the next one's.
func (g *Gateway) rewriteLoadBalancerStates(body []byte) []byte {
	arns := lbArnElement.FindAllSubmatchIndex(body, -1)
	var out bytes.Buffer
	last, changed := 0, false
	for i, m := range arns {
		if g.loadBalancerActive(string(body[m[2]:m[3]])) {
			continue
		}
		end := len(body)
		if i+1 < len(arns) {
			end = arns[i+1][0]
		}
		s := lbActiveState.FindSubmatchIndex(body[m[1]:end])
		if s == nil {
			continue
		}
		out.Write(body[last : m[1]+s[0]])
		out.Write(lbActiveState.Expand(nil, provisioningTo, body[m[1]:end], s))
		last, changed = m[1]+s[1], true
	}
	if !changed {
		return nil
	}
	out.Write(body[last:])
	return out.Bytes()
}

// standInListener is the listener of the load balancer arn's stand-in: a port on
// loopback, listening at once, or, while the load balancer provisions, bound but not
// listening until it is active. Until then a connection to it is refused: the nearest
// a local port comes to an ALB's DNS name that does not resolve yet (both fail at once,
// before any HTTP), while the address stays the load balancer's.
func (g *Gateway) standInListener(arn string) (net.Listener, error) {
	at, ok := g.readyAt(OpLoadBalancerActive, arn)
	if !ok || !time.Now().Before(at) {
		return net.Listen("tcp", "127.0.0.1:0")
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	loopback := [4]byte{127, 0, 0, 1}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: loopback}); err != nil {
		syscall.Close(fd)
		return nil, os.NewSyscallError("bind", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		syscall.Close(fd)
		return nil, os.NewSyscallError("getsockname", err)
	}
	port := sa.(*syscall.SockaddrInet4).Port
	return &pendingListener{fd: fd, at: at, addr: &net.TCPAddr{IP: net.IP(loopback[:]), Port: port}, closed: make(chan struct{})}, nil
}

// pendingListener is a bound socket that listens from at on; Accept waits until then.
type pendingListener struct {
	at     time.Time
	addr   net.Addr
	closed chan struct{}
	opened sync.Once
	err    error

	mu     sync.Mutex
	fd     int          // the bound socket, until it listens (-1 after)
	ln     net.Listener // once it listens
	isDone bool
}

func (p *pendingListener) Accept() (net.Conn, error) {
	p.opened.Do(func() { p.err = p.open() })
	if p.err != nil {
		return nil, p.err
	}
	return p.ln.Accept()
}

// open waits for the load balancer to be active, then listens.
func (p *pendingListener) open() error {
	t := time.NewTimer(time.Until(p.at))
	defer t.Stop()
	select {
	case <-t.C:
	case <-p.closed:
		return net.ErrClosed
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.isDone {
		return net.ErrClosed
	}
	fd := p.fd
	p.fd = -1
	if err := syscall.Listen(fd, syscall.SOMAXCONN); err != nil {
		syscall.Close(fd)
		return os.NewSyscallError("listen", err)
	}
	f := os.NewFile(uintptr(fd), "load balancer")
	defer f.Close()
	ln, err := net.FileListener(f)
	if err != nil {
		return err
	}
	p.ln = ln
	return nil
}

func (p *pendingListener) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.isDone {
		return nil
	}
	p.isDone = true
	close(p.closed)
	if p.ln != nil {
		return p.ln.Close()
	}
	if p.fd >= 0 {
		fd := p.fd
		p.fd = -1
		return syscall.Close(fd)
	}
	return nil
}

func (p *pendingListener) Addr() net.Addr { return p.addr }
