package stages

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/amifleet/amifleet/internal/pipeline"
)

const (
	// defaultVerifyRequests and defaultVerifyTimeout stand in when a document
	// reaches Verify without the defaults Validate fills in.
	defaultVerifyRequests = 12
	defaultVerifyTimeout  = 5 * time.Second
	// maxVerifyRequests bounds one Verify, whatever the input says, so that the
	// Lambda's run time stays bounded (requests × timeout).
	maxVerifyRequests = 100
	// maxPageBytes is how much of each answer is read: the page is one line.
	maxPageBytes = 64 << 10
	// defaultSkipReason is Reason when verify.skip is set without verify.skipReason.
	defaultSkipReason = "verify.skip is set in the input"
)

// Verify sends config.verify.requests GETs through the load balancer, each on a
// fresh connection so that the ALB can send each to another target. It passes
// when every answer is 200 and at least min(N, 2) distinct pages answered, N
// being the fleet's size: requests really rotate across instances. A failure is
// a RetryableError (a new ALB may still be warming up; the state machine retries
// with backoff) that says what was seen.
func (s *Stages) Verify(ctx context.Context, doc pipeline.Document) (pipeline.Document, error) {
	cfg := doc.Config.Verify
	if cfg.Skip {
		reason := cfg.SkipReason
		if reason == "" {
			reason = defaultSkipReason
		}
		doc.Resources.Verify = &pipeline.VerifyResult{Status: pipeline.VerifySkipped, Reason: reason}
		Log(ctx).Info("verify skipped", "reason", reason)
		return doc, nil
	}
	url := doc.Resources.LoadBalancer.Address()
	if url == "" {
		return doc, notYet("resources.loadBalancer.dnsName", pipeline.CreateLoadBalancer)
	}
	if !admitsLambda(doc.Config.HTTPCIDRs) {
		// A Lambda outside a VPC reaches the load balancer from an AWS public address
		// that changes and that no customer range contains: every GET would hang until
		// its timeout, Verify would fail, and Cleanup would delete a working fleet.
		reason := fmt.Sprintf("not looked: the load balancer admits HTTP only from %s, and this function runs outside any VPC, "+
			"from an AWS public address those ranges do not contain; the evidence is the targets' health (%s); "+
			"run `amifleet verify %s` from an address inside them to fetch the pages",
			strings.Join(doc.Config.HTTPCIDRs, ", "), targetsHealth(doc), doc.RunID)
		doc.Resources.Verify = &pipeline.VerifyResult{Status: pipeline.VerifySkipped, Reason: reason, LookFromHere: true}
		Log(ctx).Info("verify cannot look", "httpCidrs", doc.Config.HTTPCIDRs)
		return doc, nil
	}
	requests := cfg.Requests
	if requests <= 0 {
		requests = defaultVerifyRequests
	}
	requests = min(requests, maxVerifyRequests)
	timeout := time.Duration(cfg.TimeoutSeconds) * time.Second
	if timeout <= 0 {
		timeout = defaultVerifyTimeout
	}
	fleetSize := 0
	if doc.Resources.Fleet != nil {
		fleetSize = len(doc.Resources.Fleet.InstanceIDs)
	}
	need := max(min(fleetSize, 2), 1)

	result, err := Look(ctx, s.verifyClient(), url, requests, timeout, need, doc.Config.PageTemplate)
	if err != nil {
		return doc, &pipeline.RetryableError{Err: fmt.Errorf("verify failed: %w", err)}
	}
	doc.Resources.Verify = result
	Log(ctx).Info("verify passed", "url", url, "requests", result.Requests, "hostnames", result.Hostnames)
	return doc, nil
}

// Look sends requests GETs to url, each bounded by timeout, and passes when every
// answer is 200 and at least need distinct pages answered; the hostnames are read from
// the pages by the page template. Verify looks from the function; `amifleet verify`
// looks from where the user stands. The error says what was seen.
func Look(ctx context.Context, client *http.Client, url string, requests int, timeout time.Duration, need int, template string) (*pipeline.VerifyResult, error) {
	var (
		statuses = map[string]int{} // "200", "503", "error" → count
		pages    = map[string]int{} // distinct 200 bodies → count
		lastErr  string
	)
	for range requests {
		status, body, err := getPage(ctx, client, url, timeout)
		switch {
		case err != nil:
			statuses["error"]++
			lastErr = err.Error()
		case status == http.StatusOK:
			statuses["200"]++
			pages[body]++
		default:
			statuses[fmt.Sprint(status)]++
		}
		if ctx.Err() != nil {
			break
		}
	}

	hostnames := make([]string, 0, len(pages))
	for body := range pages {
		hostnames = append(hostnames, pageHostname(body, template))
	}
	sort.Strings(hostnames)
	sent := 0
	for _, n := range statuses {
		sent += n
	}
	seen := fmt.Sprintf("%d GETs to %s answered %s; %d distinct pages %v", sent, url, countsText(statuses), len(pages), hostnames)
	if statuses["200"] != sent || len(pages) < need {
		msg := seen + fmt.Sprintf("; need every answer 200 and at least %d distinct pages", need)
		if lastErr != "" {
			msg += "; last error: " + lastErr
		}
		return nil, errors.New(msg)
	}
	return &pipeline.VerifyResult{
		Status:    pipeline.VerifyPassed,
		Reason:    seen,
		Requests:  sent,
		Hostnames: hostnames,
	}, nil
}

// admitsLambda reports whether the load balancer's HTTP ranges contain every address,
// and so a Lambda's: only a /0 does.
func admitsLambda(cidrs []string) bool {
	for _, c := range cidrs {
		if strings.HasSuffix(c, "/0") {
			return true
		}
	}
	return len(cidrs) == 0 // the default: the world
}

// targetsHealth is the last health check's answer, in words ("3/3 healthy").
func targetsHealth(doc pipeline.Document) string {
	if p := doc.Polls.Of(pipeline.WaitTargetsHealthy); p != nil && p.State != "" {
		return p.State
	}
	return "not checked"
}

// verifyClient is s.HTTP without keep-alives: a reused connection would stay on
// one target, and the check is that the ALB rotates.
func (s *Stages) verifyClient() *http.Client {
	c := &http.Client{}
	if s.HTTP != nil {
		*c = *s.HTTP
	}
	var t *http.Transport
	switch rt := c.Transport.(type) {
	case nil:
		t = http.DefaultTransport.(*http.Transport).Clone()
	case *http.Transport:
		t = rt.Clone()
	}
	if t != nil {
		t.DisableKeepAlives = true
		c.Transport = t
	}
	return c
}

// getPage GETs url once, on its own connection, within timeout, and answers the
// status and the trimmed body.
func getPage(ctx context.Context, client *http.Client, url string, timeout time.Duration) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	req.Close = true // also for a Transport that is not an *http.Transport
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxPageBytes))
	if err != nil {
		return resp.StatusCode, "", err
	}
	return resp.StatusCode, strings.TrimSpace(string(body)), nil
}

func countsText(statuses map[string]int) string {
	keys := slices.Sorted(maps.Keys(statuses))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d× %s", statuses[k], k)
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, ", ")
}

var htmlTag = regexp.MustCompile(`<[^>]*>`)

// pageHostname is the hostname in a page: the text where the template has
// {hostname}, when the page matches the template's fixed text, else the page's
// text without its HTML tags.
func pageHostname(body, template string) string {
	if before, after, ok := strings.Cut(strings.TrimSpace(template), "{hostname}"); ok {
		if rest, ok := strings.CutPrefix(body, before); ok {
			if host, ok := strings.CutSuffix(rest, after); ok && strings.TrimSpace(host) != "" {
				return html.UnescapeString(strings.TrimSpace(host))
			}
		}
	}
	text := strings.Join(strings.Fields(htmlTag.ReplaceAllString(body, " ")), " ")
	if text == "" {
		return body
	}
	return html.UnescapeString(text)
}
