package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"

	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/amifleet/amifleet/internal/pricing"
	"github.com/amifleet/amifleet/internal/stages"
)

// Validator is the pipeline's Validate stage (*stages.Stages), run here with the
// CLI's AWS configuration: it makes read-only calls, so a plan creates nothing and
// says exactly what the run's own Validate would.
type Validator interface {
	Validate(context.Context, pipeline.ValidateInput) (pipeline.Document, error)
}

// Plan is what `amifleet plan` (and `run --dry-run`) prints: what a run with this
// input would create and cost. Nothing is started to make it.
type Plan struct {
	// Name is the execution name the run would have, RunID its run id.
	Name  string `json:"name"`
	RunID string `json:"runId"`
	// Region is where the run would create its resources.
	Region string `json:"region"`
	// Config is the validated input, with every default filled in.
	Config pipeline.Config `json:"config"`
	// Zones are where the instances would go (the zones of the run's subnets that
	// offer the instance type).
	Zones []string `json:"zones"`
	// Resources are what the run would create, in the order it creates them.
	Resources []PlannedResource `json:"resources"`
	// Estimate is the run's cost, as Validate priced it.
	Estimate *pricing.Estimate `json:"estimate,omitempty"`
	// PricesSource says where the price table's figures come from.
	PricesSource string `json:"pricesSource"`
}

// PlannedResource is one kind of resource a run creates, named as the stages name
// it (its Name tag, and for ELBv2 its name).
type PlannedResource struct {
	Kind  string `json:"kind"`
	Name  string `json:"name"`
	Count int    `json:"count"`
	Note  string `json:"note,omitempty"`
}

// Plan runs the Validate stage on the prepared run, here and read-only, and prints
// what the run would create and cost. Input that Validate refuses (maxHourlyCost
// under the estimate among it) exits 2 with Validate's message; nothing is started
// either way.
func (r *Runner) Plan(ctx context.Context, plan RunPlan, v Validator, region string) error {
	// Validate logs for the Lambda's log group; here its message is the error.
	ctx = stages.WithLog(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)))
	doc, err := v.Validate(ctx, pipeline.ValidateInput{
		ExecutionName: plan.Name,
		// Only the run's idempotency tokens are derived from these: a plan makes none.
		ExecutionID: "arn:aws:states:" + region + ":000000000000:execution:plan:" + plan.Name,
		StartTime:   r.now().UTC().Format("2006-01-02T15:04:05.000Z"),
		Input:       []byte(plan.Input),
	})
	var bad *pipeline.BadInputError
	switch {
	case errors.As(err, &bad):
		return &ExitError{Code: ExitUsage, Err: fmt.Errorf("the run would be refused, nothing was started: %w", err)}
	case err != nil:
		return fmt.Errorf("plan: the Validate stage, run here: %w", err)
	}
	p := Plan{Name: plan.Name, RunID: doc.RunID, Region: region, Config: doc.Config, Estimate: doc.Estimate,
		Resources: plannedResources(doc), PricesSource: pricing.Source}
	if doc.Placement != nil {
		p.Zones = doc.Placement.Zones
	}
	if r.json() {
		return r.writeDoc(p)
	}
	return writePlan(r.Stdout, p)
}

// plannedResources are what the stages create for doc, named by the naming
// helpers they use.
func plannedResources(doc pipeline.Document) []PlannedResource {
	cfg := doc.Config
	name := func(role string) string { return pipeline.ResourceName(doc.RunID, role) }
	instanceRules := "port 80 from the load balancer"
	if len(cfg.SSHCIDRs) > 0 {
		instanceRules += ", port 22 from sshCidrs"
	}
	base := "stopped after imaging (its volume stays)"
	if cfg.KeepBase() {
		base = "started again after imaging, and registered as a target"
	}
	replicas := cfg.InstanceType + " from the AMI, spread over the zones"
	if len(cfg.SSHCIDRs) > 0 {
		replicas += ", with public IPv4 addresses (sshCidrs)"
	}
	gib := pricing.DefaultRootVolumeGiB
	if doc.Estimate != nil {
		for _, l := range doc.Estimate.Lines {
			if strings.HasPrefix(l.Item, "EBS gp3") {
				gib = int(l.Size)
			}
		}
	}
	volume := fmt.Sprintf("%d GiB, encrypted, deleted with its instance", gib)
	out := []PlannedResource{
		{Kind: "security group", Name: name(pipeline.RoleALBSecurityGroup), Count: 1, Note: "the load balancer's: port 80 from httpCidrs"},
		{Kind: "security group", Name: name(pipeline.RoleInstanceSecurityGroup), Count: 1, Note: "the instances': " + instanceRules},
		{Kind: "EC2 instance (base)", Name: name(pipeline.RoleBase), Count: 1, Note: cfg.InstanceType + ", " + base},
		{Kind: "AMI", Name: name(pipeline.RoleImage), Count: 1, Note: "made from the base instance"},
		{Kind: "EBS snapshot", Name: name(pipeline.RoleImage), Count: 1, Note: "the AMI's root volume"},
		{Kind: "EC2 instance (replica)", Name: name(pipeline.RoleReplica), Count: cfg.ReplicaCount, Note: replicas},
		{Kind: "EBS volume (gp3 root)", Name: name(pipeline.RoleBase), Count: 1, Note: volume},
		{Kind: "EBS volume (gp3 root)", Name: name(pipeline.RoleReplica), Count: cfg.ReplicaCount, Note: volume},
		{Kind: "target group", Name: name(pipeline.RoleTargetGroup), Count: 1, Note: fmt.Sprintf("HTTP :80, %d targets", cfg.FleetSize())},
		{Kind: "load balancer (ALB)", Name: name(pipeline.RoleLoadBalancer), Count: 1, Note: "internet-facing, IPv4, in every zone of the run's subnets"},
		{Kind: "listener", Name: "on " + name(pipeline.RoleLoadBalancer), Count: 1, Note: "HTTP :80, forwards to the target group"},
	}
	if cfg.TeardownAfterMinutes > 0 {
		out = append(out, PlannedResource{Kind: "Teardown execution", Name: "teardown-" + doc.RunID + "-…", Count: 1,
			Note: fmt.Sprintf("deletes everything above %d minutes after the fleet is up", cfg.TeardownAfterMinutes)})
	}
	return out
}

// writePlan prints a plan for people.
func writePlan(w io.Writer, p Plan) error {
	fmt.Fprintf(w, "plan: execution %s (run id %s) in %s; nothing is started\n\n", p.Name, p.RunID, p.Region)
	fmt.Fprintln(w, "input, with the defaults filled in:")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // the page template is HTML
	if err := enc.Encode(p.Config); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nresources the run would create:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  KIND\tNAME\tCOUNT\tNOTE")
	for _, res := range p.Resources {
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%s\n", res.Kind, res.Name, res.Count, res.Note)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\ninstances go to: %s\n", strings.Join(p.Zones, ", "))
	e := p.Estimate
	if e == nil {
		fmt.Fprintln(w, "\ncost estimate: none")
		return nil
	}
	fmt.Fprintf(w, "\ncost estimate (%s, on-demand list prices as of %s, %s):\n", e.Region, e.PricesAsOf, e.Currency)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  ITEM\tCOUNT\tUNIT PRICE\tPER HOUR\tONE RUN")
	for _, l := range e.Lines {
		unit := fmt.Sprintf("%s/%s", pricing.USD(l.UnitPrice), l.Unit)
		if l.Size > 0 {
			unit = fmt.Sprintf("%g GB × %s", l.Size, unit)
		}
		fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\t%s\n", l.Item, l.Count, unit, pricing.USD(l.PerHour), pricing.USD(l.Run))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, u := range e.Unknown {
		fmt.Fprintf(w, "  unknown: %s\n", u)
	}
	qualifier := ""
	if !e.Complete {
		qualifier = "at least "
	}
	fmt.Fprintf(w, "  per hour while the fleet lives: %s%s (about %s%s a month)\n", qualifier, pricing.USD(e.PerHour), qualifier, pricing.USD(e.PerMonth))
	fmt.Fprintf(w, "  one run until Verify (about %.0f minutes): %s%s\n", e.RunMinutes, qualifier, pricing.USD(e.Run))
	if m := p.Config.MaxHourlyCost; m != nil {
		fmt.Fprintf(w, "  maxHourlyCost: %s (the estimate is within it)\n", pricing.USD(*m))
	}
	fmt.Fprintln(w, "  not counted: traffic past one LCU, data transfer out, and the Lambda and Step Functions requests")
	fmt.Fprintf(w, "  prices: %s\n", p.PricesSource)
	return nil
}
