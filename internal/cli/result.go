package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"
)

// Result is an execution as `--output json` prints it: one document per command.
type Result struct {
	ExecutionARN string `json:"executionArn"`
	Name         string `json:"name"`
	RunID        string `json:"runId"`
	Status       string `json:"status"`
	// Error and Cause say why a run failed (the final Fail state's error and cause),
	// or, for a wait that timed out, that the execution goes on.
	Error string `json:"error,omitempty"`
	Cause string `json:"cause,omitempty"`
	// Resources is what a succeeded run created; URL is its load balancer's.
	Resources *pipeline.Resources `json:"resources,omitempty"`
	URL       string              `json:"url,omitempty"`
	// Generation is the generation of the fleet that serves (1 for the Pipeline's,
	// and for a run from before generations), and ImageID that generation's image:
	// set when the run's final document has a fleet.
	// Where the run has a record (a run that may be refreshed), they are what serves
	// now, and BuiltGeneration is the one this execution built when that is another.
	Generation      int    `json:"generation,omitempty"`
	ImageID         string `json:"imageId,omitempty"`
	BuiltGeneration int    `json:"builtGeneration,omitempty"`
	// AlreadyStarted is set when `run --name` found the execution already there
	// and followed it instead of starting another.
	AlreadyStarted bool       `json:"alreadyStarted,omitempty"`
	StartDate      *time.Time `json:"startDate,omitempty"`
	StopDate       *time.Time `json:"stopDate,omitempty"`

	// Kept is set when a failed run kept its resources (keepOnFailure): what they
	// are, and the Teardown that deletes them.
	Kept *Kept `json:"kept,omitempty"`
}

// resultOf reads an execution's description into a Result.
func resultOf(d *sfn.DescribeExecutionOutput) Result {
	res := Result{
		ExecutionARN: aws.ToString(d.ExecutionArn),
		Name:         aws.ToString(d.Name),
		Status:       string(d.Status),
		Error:        aws.ToString(d.Error),
		Cause:        aws.ToString(d.Cause),
		StartDate:    d.StartDate,
		StopDate:     d.StopDate,
	}
	if res.Name == "" {
		res.Name = executionName(res.ExecutionARN)
	}
	var out pipeline.Document
	if d.Output != nil && json.Unmarshal([]byte(*d.Output), &out) == nil {
		res.RunID = out.RunID
		if !emptyResources(out.Resources) {
			res.Resources = &out.Resources
			res.URL = out.Resources.LoadBalancer.Address()
		}
		if out.Resources.Fleet != nil {
			res.Generation = out.Gen()
			if img := out.Resources.Image; img != nil {
				res.ImageID = img.ImageID
			}
		}
	}
	if res.RunID == "" && d.Input != nil {
		// A Teardown's or a Refresh's input names its run.
		var in pipeline.TeardownInput
		if json.Unmarshal([]byte(*d.Input), &in) == nil {
			res.RunID = in.RunID
		}
	}
	if res.RunID == "" {
		res.RunID, _ = pipeline.RunIDFromExecutionName(res.Name)
	}
	return res
}

func emptyResources(r pipeline.Resources) bool {
	return r.Network == nil && r.Image == nil && r.LoadBalancer == nil && r.Fleet == nil && r.Verify == nil
}

// statusExit is the exit code an execution's status means.
func statusExit(status types.ExecutionStatus) int {
	switch status {
	case types.ExecutionStatusFailed:
		return ExitFailed
	case types.ExecutionStatusTimedOut, types.ExecutionStatusAborted:
		return ExitTimeout
	}
	return ExitOK
}

func ended(status types.ExecutionStatus) bool {
	return status != types.ExecutionStatusRunning && status != types.ExecutionStatusPendingRedrive
}

// writeJSON prints v as the command's one JSON document.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// summary is the text lines that end a followed execution, or answer `status`.
func (r *Runner) summary(w io.Writer, res Result) {
	loc := r.loc()
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, v)
		}
	}
	row("status", res.Status)
	row("execution", res.Name)
	row("run id", res.RunID)
	if res.StartDate != nil {
		row("started", res.StartDate.In(loc).Format(time.DateTime+" MST"))
		if res.StopDate != nil {
			row("took", duration(res.StopDate.Sub(*res.StartDate)))
		} else {
			row("running for", duration(r.now().Sub(*res.StartDate)))
		}
	}
	if res.Error != "" || res.Cause != "" {
		row("cause", describeFailure(res.Error, res.Cause))
	}
	for _, kv := range r.keptRows(res) {
		fmt.Fprintf(tw, "%s\t%s\n", kv[0], kv[1])
	}
	if res.Resources != nil && res.Resources.LoadBalancer != nil {
		row("dns name", res.Resources.LoadBalancer.DNSName)
	}
	row("url", res.URL)
	row("generation", serving(res))
	_ = tw.Flush()
}

// serving says which generation serves, and from which image: "1 (image ami-1)";
// "" when the run has no fleet.
func serving(res Result) string {
	if res.Generation == 0 {
		return ""
	}
	s := strconv.Itoa(res.Generation)
	if res.ImageID != "" {
		s += " (image " + res.ImageID + ")"
	}
	if res.BuiltGeneration != 0 {
		s += fmt.Sprintf("; this execution built generation %d", res.BuiltGeneration)
	}
	return s
}

// outputs prints a run's resources for people.
func (r *Runner) outputs(w io.Writer, res Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k string, v ...string) {
		s := strings.TrimSpace(strings.Join(v, " "))
		if s != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, s)
		}
	}
	row("run id", res.RunID)
	row("execution", res.Name)
	row("url", res.URL)
	row("generation", serving(res))
	rs := res.Resources
	if rs == nil {
		_ = tw.Flush()
		return
	}
	if lb := rs.LoadBalancer; lb != nil {
		row("dns name", lb.DNSName)
		row("load balancer", lb.LoadBalancerARN)
		row("listener", lb.ListenerARN)
		row("target group", lb.TargetGroupARN)
	}
	if f := rs.Fleet; f != nil {
		row("instances", strings.Join(f.InstanceIDs, ", "))
		row("replicas", strings.Join(f.ReplicaInstanceIDs, ", "))
	}
	if im := rs.Image; im != nil {
		img := im.ImageID
		if im.SourceImageID != "" {
			img += " (from " + im.SourceImageID + ")"
		}
		row("image", img)
		row("snapshots", strings.Join(im.SnapshotIDs, ", "))
		row("base instance", im.BaseInstanceID)
	}
	if n := rs.Network; n != nil {
		row("vpc", n.VPCID)
		row("subnets", strings.Join(n.SubnetIDs, ", "))
		row("alb security group", n.ALBSecurityGroupID)
		row("instance security group", n.InstanceSecurityGroupID)
	}
	if v := rs.Verify; v != nil {
		s := v.Status
		if v.Reason != "" {
			s += ": " + v.Reason
		} else if v.Status == pipeline.VerifyPassed {
			s += fmt.Sprintf(": %d requests answered by %s", v.Requests, strings.Join(v.Hostnames, ", "))
		}
		row("verify", s)
	}
	_ = tw.Flush()
}
