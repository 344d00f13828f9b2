package localcloud

// AWS's timing on the EC2 side (latency.go has the model). With a model:
//
//   - RunInstances answers after OpRunInstancesAnswer's draw (keyed by the call's
//     ClientToken, or by a count of the calls without one); the call waits alone,
//     before the strict checks' launch lock, so the other calls go on;
//   - an instance is pending until its launch (the answer) + OpInstanceRunning,
//     stopping from StopInstances (or the guest's poweroff) until + OpInstanceStopped,
//     pending again from StartInstances until + a new OpInstanceRunning draw (keyed
//     id#startN), and shutting-down from TerminateInstances until +
//     OpInstanceTerminated. moto changes the state at once; DescribeInstances shows
//     the modelled one, and applies an instance-state-name filter itself (moto is asked
//     for the state it holds as well as the one asked for, and the answer is filtered
//     on the state shown);
//   - the guest OS stand-in powers a base instance off at running + OpUserDataDone
//     (per instance type), instead of after GuestOSDelay (guestos.go);
//   - an instance launched from an image the data plane carries serves at running +
//     OpBooted (instances.go);
//   - an image is pending until CreateImage + OpImageAvailable: DescribeImages shows
//     it so, and applies a state filter itself, as for instances.
//
// DescribeInstanceStatus and DescribeSnapshots are left as moto answers them: the
// stages read no state from either.

import (
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ec2Latency is what the model keeps of the instances it times; the zero value is
// ready.
type ec2Latency struct {
	mu        sync.Mutex
	runs      int                          // RunInstances calls without a ClientToken
	instances map[string]*instanceTimeline // instance id → its last state change
}

// instanceTimeline is an instance's last modelled state change: moto shows target at
// once; the model shows the state on the way to it until until.
type instanceTimeline struct {
	typ    string    // the instance type (for OpUserDataDone)
	target string    // running, stopped or terminated
	key    string    // the key of the change's draw: id, id#startN, id#stopN
	until  time.Time // when target becomes visible
	starts int       // StartInstances calls so far
	stops  int       // stops so far (StopInstances or the guest's poweroff)
}

// transitional is the state shown on the way to a state moto shows at once.
var transitional = map[string]string{"running": "pending", "stopped": "stopping", "terminated": "shutting-down"}

// instanceStateCodes are EC2's codes of the instance states.
var instanceStateCodes = map[string]int{
	"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80,
}

// stateFilters are the filters on the state the model changes, per describe, and for
// each state asked for, the one moto holds meanwhile.
var stateFilters = map[string]struct {
	name  string
	twins map[string]string
}{
	"ec2:DescribeInstances": {"instance-state-name", map[string]string{"pending": "running", "stopping": "stopped", "shutting-down": "terminated"}},
	"ec2:DescribeImages":    {"state", map[string]string{"pending": "available"}},
}

// ec2LatencyBefore holds a RunInstances for the model's answer time, before the
// strict checks and moto see it; true when it answered (the gateway is closing).
func (g *Gateway) ec2LatencyBefore(w http.ResponseWriter, r *http.Request, call apiCall) bool {
	if call.key() != "ec2:RunInstances" || g.latency() == nil {
		return false
	}
	key := call.Form.Get("ClientToken")
	if key == "" {
		g.ec2lat.mu.Lock()
		g.ec2lat.runs++
		key = "#" + strconv.Itoa(g.ec2lat.runs)
		g.ec2lat.mu.Unlock()
	} else {
		key = "token:" + key
	}
	// A retry with the same token waits only what is left of the first call's time.
	_, ready := g.modelled(OpRunInstancesAnswer, key, call.Form.Get("InstanceType"), time.Now())
	t := time.NewTimer(time.Until(ready))
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	case <-g.ctx.Done():
		http.Error(w, "amifleet gateway: closing", http.StatusServiceUnavailable)
		return true
	}
	return false
}

// ec2LatencyForward prepares a watched EC2 call for the model on its way to moto:
// a stop, start or terminate starts its instances' change (before moto makes it, so
// that no describe sees moto's state early), and a describe's state filter asks moto
// for the states it holds meanwhile too (w.states keeps the filter asked for).
func (g *Gateway) ec2LatencyForward(r *http.Request, w *watchedCall) {
	if g.latency() == nil {
		return
	}
	now := time.Now()
	switch w.call.key() {
	case "ec2:StopInstances":
		for _, id := range formList(w.call, "InstanceId") {
			g.instanceStopping(id, now)
		}
	case "ec2:StartInstances":
		for _, id := range formList(w.call, "InstanceId") {
			g.instanceStarting(id, now)
		}
	case "ec2:TerminateInstances":
		for _, id := range formList(w.call, "InstanceId") {
			g.instanceTerminating(id, now)
		}
	case "ec2:DescribeInstances", "ec2:DescribeImages":
		f := stateFilters[w.call.key()]
		n, values := formFilter(w.call, f.name)
		if n == "" {
			return
		}
		w.states = values
		set := map[string][]string{}
		next := len(values) + 1
		for _, v := range values {
			if twin, ok := f.twins[v]; ok && !slices.Contains(values, twin) {
				set["Filter."+n+".Value."+strconv.Itoa(next)] = []string{twin}
				next++
			}
		}
		if len(set) > 0 {
			w.call = rewriteForm(r, w.call, set)
		}
	}
}

var filterName = regexp.MustCompile(`^Filter\.(\d+)\.Name$`)

// formFilter is the number (N of Filter.N) and the values of the call's filter named
// name; "" when it has none.
func formFilter(call apiCall, name string) (string, []string) {
	for k, v := range call.Form {
		m := filterName.FindStringSubmatch(k)
		if m == nil || len(v) == 0 || v[0] != name {
			continue
		}
		var values []string
		for i := 1; ; i++ {
			val, ok := call.Form["Filter."+m[1]+".Value."+strconv.Itoa(i)]
			if !ok || len(val) == 0 {
				break
			}
			values = append(values, val[0])
		}
		return m[1], values
	}
	return "", nil
}

// ec2LatencySaw follows a watched EC2 answer for the model: a launch starts its
// instances' pending, a CreateImage its image's; a describe's states are rewritten
// (the new body; nil leaves moto's).
func (g *Gateway) ec2LatencySaw(call apiCall, states []string, body []byte) []byte {
	if call.Service != "ec2" || g.latency() == nil {
		return nil
	}
	now := time.Now()
	switch call.Action {
	case "RunInstances":
		typ := call.Form.Get("InstanceType")
		role, gen := requestRole(call.Form)
		for _, id := range xmlValues(body, "instanceId") {
			if id != "" {
				if oneOfAKind(role) {
					g.drawByRole(id, role, gen)
				}
				g.instanceLaunched(id, typ, now)
			}
		}
	case "CreateImage":
		role, gen := requestRole(call.Form)
		for _, id := range xmlValues(body, "imageId") {
			if oneOfAKind(role) {
				g.drawByRole(id, role, gen)
			}
			g.modelled(OpImageAvailable, id, "", now)
		}
	case "DescribeInstances":
		return g.rewriteInstanceStates(body, states, now)
	case "DescribeImages":
		return g.rewriteImageStates(body, states, now)
	}
	return nil
}

// instanceLaunched starts a new instance's pending.
func (g *Gateway) instanceLaunched(id, typ string, now time.Time) {
	_, until := g.modelled(OpInstanceRunning, id, typ, now)
	g.ec2lat.mu.Lock()
	defer g.ec2lat.mu.Unlock()
	if g.ec2lat.instances == nil {
		g.ec2lat.instances = map[string]*instanceTimeline{}
	}
	if tl := g.ec2lat.instances[id]; tl != nil && tl.key == id {
		return // seen (a ClientToken's retry answered the same launch)
	}
	g.ec2lat.instances[id] = &instanceTimeline{typ: typ, target: "running", key: id, until: until}
}

// timeline is the instance's timeline, made if the model has not seen it launch.
// Callers hold g.ec2lat.mu.
func (g *Gateway) timeline(id string) *instanceTimeline {
	if g.ec2lat.instances == nil {
		g.ec2lat.instances = map[string]*instanceTimeline{}
	}
	tl := g.ec2lat.instances[id]
	if tl == nil {
		tl = &instanceTimeline{}
		g.ec2lat.instances[id] = tl
	}
	return tl
}

// instanceStopping starts the instance's stopping (StopInstances or the guest's
// poweroff); a stop while it is stopping changes nothing, as on EC2.
func (g *Gateway) instanceStopping(id string, now time.Time) {
	g.ec2lat.mu.Lock()
	defer g.ec2lat.mu.Unlock()
	tl := g.timeline(id)
	if tl.target == "stopped" && now.Before(tl.until) || tl.target == "terminated" {
		return
	}
	tl.stops++
	key := id
	if tl.stops > 1 {
		key = id + "#stop" + strconv.Itoa(tl.stops)
	}
	_, until := g.modelled(OpInstanceStopped, key, tl.typ, now)
	tl.target, tl.key, tl.until = "stopped", key, until
}

// instanceStarting starts the instance's pending after StartInstances: a new draw.
func (g *Gateway) instanceStarting(id string, now time.Time) {
	g.ec2lat.mu.Lock()
	defer g.ec2lat.mu.Unlock()
	tl := g.timeline(id)
	if tl.target == "running" && now.Before(tl.until) || tl.target == "terminated" {
		return
	}
	tl.starts++
	key := id + "#start" + strconv.Itoa(tl.starts+1) // the launch was the first
	_, until := g.modelled(OpInstanceRunning, key, tl.typ, now)
	tl.target, tl.key, tl.until = "running", key, until
}

// instanceTerminating starts the instance's shutting-down.
func (g *Gateway) instanceTerminating(id string, now time.Time) {
	g.ec2lat.mu.Lock()
	defer g.ec2lat.mu.Unlock()
	tl := g.timeline(id)
	if tl.target == "terminated" {
		return
	}
	_, until := g.modelled(OpInstanceTerminated, id, tl.typ, now)
	tl.target, tl.key, tl.until = "terminated", id, until
}

// shownInstanceState is the state the model shows for an instance moto says is in
// state moto.
func (g *Gateway) shownInstanceState(id, moto string, now time.Time) string {
	g.ec2lat.mu.Lock()
	defer g.ec2lat.mu.Unlock()
	tl := g.ec2lat.instances[id]
	if tl == nil || tl.target != moto || !now.Before(tl.until) {
		return moto
	}
	return transitional[moto]
}

// userDataDoneAt is when the user data of the base instance id finishes: running +
// OpUserDataDone for its type; false without a model or a launch the model saw.
func (g *Gateway) userDataDoneAt(id string) (time.Time, bool) {
	if g.latency() == nil {
		return time.Time{}, false
	}
	g.ec2lat.mu.Lock()
	tl := g.ec2lat.instances[id]
	if tl == nil || tl.target != "running" {
		g.ec2lat.mu.Unlock()
		return time.Time{}, false
	}
	typ, running := tl.typ, tl.until
	g.ec2lat.mu.Unlock()
	_, at := g.modelled(OpUserDataDone, id, typ, running)
	return at, true
}

// bootedAt is when the services of the instance id, launched or started from an image
// the data plane carries, are up: running + OpBooted (a draw per launch or start);
// false without a model or a launch the model saw.
func (g *Gateway) bootedAt(id string) (time.Time, bool) {
	if g.latency() == nil {
		return time.Time{}, false
	}
	g.ec2lat.mu.Lock()
	tl := g.ec2lat.instances[id]
	if tl == nil || tl.target != "running" {
		g.ec2lat.mu.Unlock()
		return time.Time{}, false
	}
	key, typ, running := tl.key, tl.typ, tl.until
	g.ec2lat.mu.Unlock()
	_, at := g.modelled(OpBooted, key, typ, running)
	return at, true
}

// imageShown is the state the model shows for an image moto says is in state moto.
func (g *Gateway) imageShown(id, moto string, now time.Time) string {
	if at, ok := g.readyAt(OpImageAvailable, id); ok && moto == "available" && now.Before(at) {
		return "pending"
	}
	return moto
}

// rewriteInstanceStates is a DescribeInstances answer with the modelled states, and
// without the instances (and reservations left empty) a state filter (states, when
// not nil) does not take; nil when it is unchanged or unreadable.
func (g *Gateway) rewriteInstanceStates(body []byte, states []string, now time.Time) []byte {
	doc := string(body)
	set := parseSpans(doc).path("DescribeInstancesResponse", "reservationSet")
	if set == nil {
		return nil
	}
	var edits []xmlEdit
	for _, res := range set.named("item") {
		instances := res.path("instancesSet")
		if instances == nil {
			continue
		}
		items := instances.named("item")
		var resEdits []xmlEdit
		kept := 0
		for _, in := range items {
			idNode, stateNode := in.path("instanceId"), in.path("instanceState")
			nameNode := stateNode.path("name")
			if idNode == nil || nameNode == nil {
				continue
			}
			moto := nameNode.text(doc)
			shown := g.shownInstanceState(idNode.text(doc), moto, now)
			if states != nil && !slices.Contains(states, shown) {
				resEdits = append(resEdits, xmlEdit{in.start, in.end, ""})
				continue
			}
			kept++
			if shown != moto {
				resEdits = append(resEdits, xmlEdit{stateNode.inner, stateNode.innerEnd,
					"<code>" + strconv.Itoa(instanceStateCodes[shown]) + "</code><name>" + shown + "</name>"})
			}
		}
		if kept == 0 && len(items) > 0 && states != nil {
			edits = append(edits, xmlEdit{res.start, res.end, ""})
			continue
		}
		edits = append(edits, resEdits...)
	}
	return applyEdits(doc, edits)
}

// rewriteImageStates is a DescribeImages answer with the modelled states, and without
// the images a state filter (states, when not nil) does not take; nil when unchanged.
func (g *Gateway) rewriteImageStates(body []byte, states []string, now time.Time) []byte {
	doc := string(body)
	set := parseSpans(doc).path("DescribeImagesResponse", "imagesSet")
	if set == nil {
		return nil
	}
	var edits []xmlEdit
	for _, img := range set.named("item") {
		idNode, stateNode := img.path("imageId"), img.path("imageState")
		if idNode == nil || stateNode == nil {
			continue
		}
		moto := stateNode.text(doc)
		shown := g.imageShown(idNode.text(doc), moto, now)
		switch {
		case states != nil && !slices.Contains(states, shown):
			edits = append(edits, xmlEdit{img.start, img.end, ""})
		case shown != moto:
			edits = append(edits, xmlEdit{stateNode.inner, stateNode.innerEnd, shown})
		}
	}
	return applyEdits(doc, edits)
}

// xmlSpan is an element of an XML answer, by its place in the text: enough to
// rewrite an answer without re-encoding it.
type xmlSpan struct {
	name            string
	start, end      int // the element, tags included
	inner, innerEnd int // its content
	children        []*xmlSpan
}

// parseSpans reads the elements of an XML document (the root's children are the
// returned span's); it reads what it can of a malformed one.
func parseSpans(doc string) *xmlSpan {
	top := &xmlSpan{end: len(doc), innerEnd: len(doc)}
	stack := []*xmlSpan{top}
	for i := 0; i < len(doc); {
		lt := strings.IndexByte(doc[i:], '<')
		if lt < 0 {
			break
		}
		lt += i
		gt := strings.IndexByte(doc[lt:], '>')
		if gt < 0 {
			break
		}
		gt += lt
		i = gt + 1
		tag := doc[lt+1 : gt]
		switch {
		case strings.HasPrefix(tag, "?") || strings.HasPrefix(tag, "!"):
		case strings.HasPrefix(tag, "/"):
			if len(stack) > 1 {
				e := stack[len(stack)-1]
				e.innerEnd, e.end = lt, gt+1
				stack = stack[:len(stack)-1]
			}
		default:
			selfClosing := strings.HasSuffix(tag, "/")
			name := strings.TrimSuffix(tag, "/")
			if sp := strings.IndexAny(name, " \t\r\n"); sp >= 0 {
				name = name[:sp]
			}
			e := &xmlSpan{name: name, start: lt, inner: gt + 1, innerEnd: gt + 1, end: gt + 1}
			parent := stack[len(stack)-1]
			parent.children = append(parent.children, e)
			if !selfClosing {
				stack = append(stack, e)
			}
		}
	}
	return top
}

// path is the element along the names, each the first child so named of the one
// before; nil when there is none.
func (s *xmlSpan) path(names ...string) *xmlSpan {
	if s == nil || len(names) == 0 {
		return s
	}
	for _, c := range s.children {
		if c.name == names[0] {
			return c.path(names[1:]...)
		}
	}
	return nil
}

// named are the children named name.
func (s *xmlSpan) named(name string) []*xmlSpan {
	var out []*xmlSpan
	for _, c := range s.children {
		if c.name == name {
			out = append(out, c)
		}
	}
	return out
}

// text is the element's content.
func (s *xmlSpan) text(doc string) string { return strings.TrimSpace(doc[s.inner:s.innerEnd]) }

// xmlEdit replaces doc[start:end] with text.
type xmlEdit struct {
	start, end int
	text       string
}

// applyEdits is doc with the edits (which do not overlap) made; nil when there are
// none.
func applyEdits(doc string, edits []xmlEdit) []byte {
	if len(edits) == 0 {
		return nil
	}
	slices.SortFunc(edits, func(a, b xmlEdit) int { return a.start - b.start })
	var b strings.Builder
	at := 0
	for _, e := range edits {
		b.WriteString(doc[at:e.start])
		b.WriteString(e.text)
		at = e.end
	}
	b.WriteString(doc[at:])
	return []byte(b.String())
}

// guestPowerOff is when the guest OS powers off some of a launch's instances.
type guestPowerOff struct {
	at  time.Time
	ids []string
}

// guestPowerOffs are when the user data of a launch's instances finishes: all after
// delay without a model; with one, each at its running + OpUserDataDone.
func (g *Gateway) guestPowerOffs(ids []string, delay time.Duration) []guestPowerOff {
	now := time.Now()
	if g.latency() == nil {
		return []guestPowerOff{{at: now.Add(delay), ids: ids}}
	}
	var out []guestPowerOff
	for _, id := range ids {
		at, ok := g.userDataDoneAt(id)
		if !ok {
			at = now.Add(delay)
		}
		out = append(out, guestPowerOff{at: at, ids: []string{id}})
	}
	return out
}

// guestPoweringOff starts the stopping of instances the guest OS powers off, before
// moto stops them.
func (g *Gateway) guestPoweringOff(ids []string) {
	if g.latency() == nil {
		return
	}
	now := time.Now()
	for _, id := range ids {
		g.instanceStopping(id, now)
	}
}
