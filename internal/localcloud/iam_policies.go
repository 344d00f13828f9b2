package localcloud

// A role's policies as deployed: read from moto's IAM (inline: ListRolePolicies and
// GetRolePolicy; attached managed: ListAttachedRolePolicies, GetPolicy and
// GetPolicyVersion; its permissions boundary, if any), straight from moto, never
// through the gateway. Cached per role until the gateway forwards a call that can
// change them (iamChangesPolicies: an IAM write, a CloudFormation deploy).

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// iamSettle is how long after a call that can change policies the policies read are
// not kept: the change may still be under way in moto when they are read (a stack
// being deployed, a write answered after a concurrent read).
const iamSettle = 2 * time.Second

type iamRolePolicies struct {
	identity []iamNamedPolicy
	boundary []iamNamedPolicy
}

type iamPolicyCache struct {
	mu          sync.Mutex
	gen         uint64
	invalidated time.Time
	roles       map[string]iamRolePolicies // role ARN →
}

// invalidate forgets every role's policies.
func (c *iamPolicyCache) invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.invalidated = time.Now()
	c.roles = nil
}

func (c *iamPolicyCache) get(role string) (iamRolePolicies, uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.roles[role]
	return p, c.gen, ok
}

// put keeps what was read, unless a change came since, or came shortly before the
// read started.
func (c *iamPolicyCache) put(role string, p iamRolePolicies, gen uint64, started time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen || started.Sub(c.invalidated) < iamSettle {
		return
	}
	if c.roles == nil {
		c.roles = map[string]iamRolePolicies{}
	}
	c.roles[role] = p
}

// iamPolicies returns the role's policies as deployed in moto.
func (g *Gateway) iamPolicies(ctx context.Context, roleARN string) (iamRolePolicies, error) {
	if p, _, ok := g.iam.policies.get(roleARN); ok {
		return p, nil
	}
	_, gen, _ := g.iam.policies.get(roleARN)
	started := time.Now()
	p, err := g.readRolePolicies(ctx, roleARN)
	if err != nil {
		return p, err
	}
	g.iam.policies.put(roleARN, p, gen, started)
	return p, nil
}

func (g *Gateway) readRolePolicies(ctx context.Context, roleARN string) (iamRolePolicies, error) {
	var out iamRolePolicies
	role := roleARN[strings.LastIndex(roleARN, "/")+1:]

	var getRole struct {
		Role struct {
			Arn                 string `xml:"Arn"`
			PermissionsBoundary struct {
				PermissionsBoundaryArn string `xml:"PermissionsBoundaryArn"`
			} `xml:"PermissionsBoundary"`
		} `xml:"GetRoleResult>Role"`
	}
	if err := g.iamQuery(ctx, "GetRole", url.Values{"RoleName": {role}}, &getRole); err != nil {
		return out, err
	}

	marker := ""
	for {
		var list struct {
			Names       []string `xml:"ListRolePoliciesResult>PolicyNames>member"`
			IsTruncated bool     `xml:"ListRolePoliciesResult>IsTruncated"`
			Marker      string   `xml:"ListRolePoliciesResult>Marker"`
		}
		params := url.Values{"RoleName": {role}}
		if marker != "" {
			params.Set("Marker", marker)
		}
		if err := g.iamQuery(ctx, "ListRolePolicies", params, &list); err != nil {
			return out, err
		}
		for _, name := range list.Names {
			var got struct {
				Document string `xml:"GetRolePolicyResult>PolicyDocument"`
			}
			if err := g.iamQuery(ctx, "GetRolePolicy", url.Values{"RoleName": {role}, "PolicyName": {name}}, &got); err != nil {
				return out, err
			}
			doc, err := iamPolicyDocument(got.Document)
			if err != nil {
				return out, fmt.Errorf("inline policy %s: %w", name, err)
			}
			out.identity = append(out.identity, iamNamedPolicy{Name: name, Policy: doc})
		}
		if !list.IsTruncated || list.Marker == "" {
			break
		}
		marker = list.Marker
	}

	marker = ""
	for {
		var list struct {
			Policies []struct {
				Name string `xml:"PolicyName"`
				ARN  string `xml:"PolicyArn"`
			} `xml:"ListAttachedRolePoliciesResult>AttachedPolicies>member"`
			IsTruncated bool   `xml:"ListAttachedRolePoliciesResult>IsTruncated"`
			Marker      string `xml:"ListAttachedRolePoliciesResult>Marker"`
		}
		params := url.Values{"RoleName": {role}}
		if marker != "" {
			params.Set("Marker", marker)
		}
		if err := g.iamQuery(ctx, "ListAttachedRolePolicies", params, &list); err != nil {
			return out, err
		}
		for _, p := range list.Policies {
			doc, err := g.managedPolicy(ctx, p.ARN)
			if err != nil {
				return out, err
			}
			out.identity = append(out.identity, iamNamedPolicy{Name: p.ARN, Policy: doc})
		}
		if !list.IsTruncated || list.Marker == "" {
			break
		}
		marker = list.Marker
	}

	if b := getRole.Role.PermissionsBoundary.PermissionsBoundaryArn; b != "" {
		doc, err := g.managedPolicy(ctx, b)
		if err != nil {
			return out, fmt.Errorf("permissions boundary: %w", err)
		}
		out.boundary = []iamNamedPolicy{{Name: b, Policy: doc}}
	}
	return out, nil
}

// managedPolicy is the default version's document of a managed policy.
func (g *Gateway) managedPolicy(ctx context.Context, arn string) (json.RawMessage, error) {
	var pol struct {
		DefaultVersionID string `xml:"GetPolicyResult>Policy>DefaultVersionId"`
	}
	if err := g.iamQuery(ctx, "GetPolicy", url.Values{"PolicyArn": {arn}}, &pol); err != nil {
		return nil, err
	}
	var ver struct {
		Document string `xml:"GetPolicyVersionResult>PolicyVersion>Document"`
	}
	if err := g.iamQuery(ctx, "GetPolicyVersion", url.Values{"PolicyArn": {arn}, "VersionId": {pol.DefaultVersionID}}, &ver); err != nil {
		return nil, err
	}
	doc, err := iamPolicyDocument(ver.Document)
	if err != nil {
		return nil, fmt.Errorf("managed policy %s: %w", arn, err)
	}
	return doc, nil
}

// iamPolicyDocument reads a policy document as IAM returns it: URL-encoded JSON (moto
// sometimes returns it as is).
func iamPolicyDocument(s string) (json.RawMessage, error) {
	s = strings.TrimSpace(s)
	if !json.Valid([]byte(s)) {
		dec, err := url.PathUnescape(s)
		if err != nil {
			return nil, fmt.Errorf("not JSON and not URL-encoded: %w", err)
		}
		s = dec
	}
	if !json.Valid([]byte(s)) {
		return nil, errors.New("not a JSON document")
	}
	return json.RawMessage(s), nil
}

// iamAPIError is an error IAM answered.
type iamAPIError struct {
	Status  int
	Code    string
	Message string
}

func (e *iamAPIError) Error() string {
	return fmt.Sprintf("moto IAM: %s: %s (%d)", e.Code, e.Message, e.Status)
}

// iamQuery makes an IAM query-protocol call straight to moto (the gateway's own
// call: not counted, not checked, never faulted) and decodes its answer into out.
func (g *Gateway) iamQuery(ctx context.Context, action string, params url.Values, out any) error {
	form := url.Values{"Action": {action}, "Version": {"2010-05-08"}}
	for k, v := range params {
		form[k] = v
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.upstream.String()+"/", strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	// moto routes on the credential scope's service; any key lands in its default
	// account.
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=amifleet-local/"+time.Now().UTC().Format("20060102")+
		"/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("moto IAM %s: %w", action, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("moto IAM %s: %w", action, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Code    string `xml:"Error>Code"`
			Message string `xml:"Error>Message"`
		}
		_ = xml.Unmarshal(body, &e)
		if e.Code == "" {
			e.Code = resp.Status
		}
		return &iamAPIError{Status: resp.StatusCode, Code: e.Code, Message: e.Message}
	}
	if out == nil {
		return nil
	}
	if err := xml.Unmarshal(body, out); err != nil {
		return fmt.Errorf("moto IAM %s: reading the answer: %w", action, err)
	}
	return nil
}

// iamRoleExists says whether moto's IAM has the role.
func (g *Gateway) iamRoleExists(ctx context.Context, name string) (bool, error) {
	err := g.iamQuery(ctx, "GetRole", url.Values{"RoleName": {name}}, nil)
	var apiErr *iamAPIError
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &apiErr) && apiErr.Code == "NoSuchEntity":
		return false, nil
	}
	return false, err
}
