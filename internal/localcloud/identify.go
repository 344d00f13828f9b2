package localcloud

// Naming a request: the AWS service, action, region and protocol of each call the
// gateway receives, so that it can route it, count it and inject faults into it.

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
)

// maxFormBody bounds the query- and JSON-protocol bodies the gateway reads to find
// the action (and, for JSON, to map it for IAM and match faults).
const maxFormBody = 32 << 20

// apiCall is what the gateway makes of a request.
type apiCall struct {
	// Service is the SigV4 signing name ("ec2", "elasticloadbalancing", "lambda",
	// "states", "s3", ...), as in IAM actions.
	Service string
	// Action is the API operation ("DescribeInstances", "Invoke", ...).
	Action string
	// Region is the request's signing region ("" when unsigned).
	Region string
	// Protocol says how errors are written: "ec2", "query", "json", "rest-json",
	// "rest-xml".
	Protocol string
	// Form is a query-protocol request's parameters.
	Form url.Values
	// Body is a JSON-protocol request's body (DynamoDB, SSM, Step Functions): the IAM
	// mapping reads the resources it names, and a fault's Match looks in it.
	Body []byte
	// AccessKey is the access key ID the request is signed with ("" when unsigned):
	// a function's own (functionAccessKey) or anyone else's.
	AccessKey string
}

func (c apiCall) key() string { return c.Service + ":" + c.Action }

// identify names a request's service and action: the SigV4 credential scope gives the
// service and region; the Action parameter (query protocols), X-Amz-Target (JSON
// protocols) or the method and path (REST: Lambda, S3) give the action.
func identify(r *http.Request) (apiCall, error) {
	var c apiCall
	scope := r.Header.Get("Authorization")
	if i := strings.Index(scope, "Credential="); i >= 0 {
		scope = scope[i+len("Credential="):]
		if j := strings.IndexAny(scope, ", "); j >= 0 {
			scope = scope[:j]
		}
	} else {
		scope = r.URL.Query().Get("X-Amz-Credential")
	}
	// access-key/date/region/service/aws4_request
	if parts := strings.Split(scope, "/"); len(parts) == 5 {
		c.AccessKey, c.Region, c.Service = parts[0], parts[2], parts[3]
	}

	form := r.URL.Query()
	target := r.Header.Get("X-Amz-Target")
	if r.Method == http.MethodPost && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		body, err := readBody(r)
		if err != nil {
			return c, err
		}
		if bf, err := url.ParseQuery(string(body)); err == nil {
			for k, v := range bf {
				form[k] = v
			}
		}
	}
	switch {
	case target != "":
		c.Protocol = "json"
		c.Action = target[strings.LastIndex(target, ".")+1:]
		if r.Body != nil && r.Body != http.NoBody {
			body, err := readBody(r)
			if err != nil {
				return c, err
			}
			c.Body = body
		}
	case form.Get("Action") != "":
		c.Protocol = "query"
		c.Action = form.Get("Action")
		c.Form = form
	case strings.HasPrefix(r.URL.Path, "/2015-03-31/functions") || c.Service == "lambda":
		c.Protocol = "rest-json"
		if c.Service == "" {
			c.Service = "lambda"
		}
		c.Action = lambdaAction(r.Method, r.URL.Path)
	case c.Service == "s3" || c.Service == "":
		c.Protocol = "rest-xml"
		if c.Service == "" {
			c.Service = "s3"
		}
		c.Action = s3Action(r)
	default:
		c.Protocol = "rest-json"
		c.Action = r.Method + " " + r.URL.Path
	}
	if c.Service == "ec2" {
		c.Protocol = "ec2"
	}
	if c.Service == "" {
		c.Service = "unknown"
	}
	return c, nil
}

// readBody reads r's body (up to maxFormBody) and puts it back for moto.
func readBody(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxFormBody))
	if err != nil {
		return nil, fmt.Errorf("reading request: %w", err)
	}
	r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	return body, nil
}

// lambdaAction names the Lambda REST operations the project uses; others are named
// by method and path.
func lambdaAction(method, path string) string {
	rest, ok := strings.CutPrefix(path, "/2015-03-31/functions")
	if !ok {
		return method + " " + path
	}
	parts := strings.Split(strings.Trim(rest, "/"), "/")
	if parts[0] == "" {
		parts = nil
	}
	switch {
	case len(parts) == 0 && method == http.MethodGet:
		return "ListFunctions"
	case len(parts) == 0 && method == http.MethodPost:
		return "CreateFunction"
	case len(parts) == 1 && method == http.MethodGet:
		return "GetFunction"
	case len(parts) == 1 && method == http.MethodDelete:
		return "DeleteFunction"
	case len(parts) == 2 && parts[1] == "invocations" && method == http.MethodPost:
		return "Invoke"
	case len(parts) == 2 && parts[1] == "configuration" && method == http.MethodGet:
		return "GetFunctionConfiguration"
	case len(parts) == 2 && parts[1] == "configuration" && method == http.MethodPut:
		return "UpdateFunctionConfiguration"
	case len(parts) == 2 && parts[1] == "code" && method == http.MethodPut:
		return "UpdateFunctionCode"
	case len(parts) >= 2 && parts[1] == "policy":
		return map[string]string{http.MethodPost: "AddPermission", http.MethodGet: "GetPolicy", http.MethodDelete: "RemovePermission"}[method]
	case len(parts) == 2 && parts[1] == "versions" && method == http.MethodPost:
		return "PublishVersion"
	}
	return method + " " + path
}

// s3Action names S3 operations from the method, whether a key is addressed, and the
// first sub-resource in the query; best effort, for counts and faults.
func s3Action(r *http.Request) string {
	path := strings.TrimPrefix(r.URL.Path, "/")
	bucket, key, _ := strings.Cut(path, "/")
	if host, _, err := net.SplitHostPort(r.Host); err == nil && strings.HasSuffix(host, ".localhost") {
		bucket, key = strings.TrimSuffix(host, ".localhost"), path
	}
	q := r.URL.Query()
	verb := map[string]string{http.MethodGet: "Get", http.MethodPut: "Put", http.MethodDelete: "Delete", http.MethodHead: "Head", http.MethodPost: "Post"}[r.Method]
	switch {
	case bucket == "":
		return "ListBuckets"
	case key != "":
		switch {
		case r.Method == http.MethodPut && r.Header.Get("X-Amz-Copy-Source") != "":
			return "CopyObject"
		case r.Method == http.MethodPost && q.Has("uploads"):
			return "CreateMultipartUpload"
		case r.Method == http.MethodPut && q.Has("partNumber"):
			return "UploadPart"
		case r.Method == http.MethodPost && q.Has("uploadId"):
			return "CompleteMultipartUpload"
		}
		return verb + "Object"
	case r.Method == http.MethodPost && q.Has("delete"):
		return "DeleteObjects"
	case r.Method == http.MethodGet && q.Get("list-type") == "2":
		return "ListObjectsV2"
	}
	subs := make([]string, 0, len(q))
	for k := range q {
		if !strings.Contains(k, "-") && k != "prefix" && k != "delimiter" && k != "marker" {
			subs = append(subs, k)
		}
	}
	sort.Strings(subs)
	if len(subs) > 0 {
		return verb + "Bucket" + strings.ToUpper(subs[0][:1]) + subs[0][1:]
	}
	switch r.Method {
	case http.MethodGet:
		return "ListObjects"
	case http.MethodPut:
		return "CreateBucket"
	}
	return verb + "Bucket"
}
