package localcloud

// Lambda Invoke, answered by the gateway itself: the deployed function's
// configuration is read from moto, its deployment package unpacked (packages.go), and
// its real bootstrap run by a Runtime (runtime.go).

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

// deployedFunction is one function's runtime and the code it runs.
type deployedFunction struct {
	sha string
	env string // fingerprint of the configuration the runtime was made with
	rt  *Runtime
}

// serveInvoke answers Lambda Invoke by running the function's bootstrap, as Lambda
// does: 200 and the payload; a function error is 200 with X-Amz-Function-Error.
func (g *Gateway) serveInvoke(w http.ResponseWriter, r *http.Request, call apiCall) {
	requestID := newRequestID()
	w.Header().Set("X-Amzn-Requestid", requestID)
	ref := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/2015-03-31/functions/"), "/invocations")
	name, region := parseFunctionRef(ref)
	if region == "" {
		region = call.Region
	}
	if region == "" {
		region = g.opts.Region
	}
	payload, err := io.ReadAll(r.Body)
	if err != nil {
		writeAPIError(w, call, "InvalidRequestContentException", err.Error(), http.StatusBadRequest)
		return
	}
	if len(bytes.TrimSpace(payload)) == 0 {
		payload = []byte("{}")
	}
	fn, err := g.function(r.Context(), region, name)
	if err != nil {
		var nf *lambdatypes.ResourceNotFoundException
		if errors.As(err, &nf) {
			writeAPIError(w, call, "ResourceNotFoundException", "Function not found: "+ref, http.StatusNotFound)
			return
		}
		g.log.Error("function not runnable", "function", name, "region", region, "error", err.Error())
		writeAPIError(w, call, "ServiceException", "amifleet gateway: "+err.Error(), http.StatusInternalServerError)
		return
	}
	crash := g.faults.takeCrash(fn.rt.Config().Name, payload)
	run := func(ctx context.Context) (InvokeResult, error) {
		if crash {
			g.log.Info("crash injected", "function", fn.rt.Config().Name, "requestId", requestID)
			return fn.rt.InvokeAndCrash(ctx, requestID, payload)
		}
		return fn.rt.Invoke(ctx, requestID, payload)
	}
	switch r.Header.Get("X-Amz-Invocation-Type") {
	case "DryRun":
		w.WriteHeader(http.StatusNoContent)
		return
	case "Event":
		g.bg.Add(1)
		go func() {
			defer g.bg.Done()
			if _, err := run(g.ctx); err != nil {
				g.log.Error("event invocation", "function", name, "error", err.Error())
			}
		}()
		w.WriteHeader(http.StatusAccepted)
		return
	}
	start := time.Now()
	res, err := run(r.Context())
	if err != nil {
		writeAPIError(w, call, "ServiceException", "amifleet gateway: "+err.Error(), http.StatusInternalServerError)
		return
	}
	g.log.Info("invoked", "function", fn.rt.Config().Name, "requestId", requestID, "errorType", res.ErrorType(), "ms", time.Since(start).Milliseconds())
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Amz-Executed-Version", "$LATEST")
	if res.FunctionError != "" {
		h.Set("X-Amz-Function-Error", res.FunctionError)
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(res.Payload)
}

// parseFunctionRef splits a FunctionName (name, name:qualifier, or ARN) into the name
// and, for an ARN, its region.
func parseFunctionRef(ref string) (name, region string) {
	if strings.HasPrefix(ref, "arn:") {
		// arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]
		p := strings.Split(ref, ":")
		if len(p) >= 7 {
			return p[6], p[3]
		}
		return ref, ""
	}
	// ACCOUNT:function:NAME (partial ARN)
	if p := strings.Split(ref, ":"); len(p) >= 3 && p[1] == "function" {
		return p[2], ""
	}
	name, _, _ = strings.Cut(ref, ":")
	return name, ""
}

// function returns the runtime of a deployed function, made (or remade after a
// redeploy) from its configuration in moto.
func (g *Gateway) function(ctx context.Context, region, name string) (*deployedFunction, error) {
	out, err := g.lambda.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String(name)}, func(o *lambda.Options) { o.Region = region })
	if err != nil {
		return nil, err
	}
	conf := out.Configuration
	if conf == nil || conf.CodeSha256 == nil {
		return nil, fmt.Errorf("function %s: no configuration or CodeSha256 in GetFunction", name)
	}
	sha := *conf.CodeSha256
	env := functionEnv(conf, region, g.url)
	g.iam.learnFunction(region, conf)
	fingerprint := envFingerprint(env, conf)
	key := region + "/" + aws.ToString(conf.FunctionName)

	g.mu.Lock()
	f, ok := g.functions[key]
	g.mu.Unlock()
	if ok && f.sha == sha && f.env == fingerprint {
		return f, nil
	}

	location := ""
	if out.Code != nil {
		location = aws.ToString(out.Code.Location)
	}
	dir, err := g.codeDir(ctx, region, sha, location)
	if err != nil {
		return nil, fmt.Errorf("function %s: %w", name, err)
	}
	timeout := defaultFunctionTimeout
	if conf.Timeout != nil && *conf.Timeout > 0 {
		timeout = time.Duration(*conf.Timeout) * time.Second
	}
	group := g.logs.logGroupOf(ctx, region, conf)
	env["AWS_LAMBDA_LOG_GROUP_NAME"] = group
	rt := NewRuntime(FunctionConfig{
		Name:     aws.ToString(conf.FunctionName),
		ARN:      aws.ToString(conf.FunctionArn),
		CodeDir:  dir,
		Timeout:  timeout,
		Env:      env,
		LogGroup: group,
		Region:   region,
		logs:     g.logs,
	}, g.opts.MaxProcsPerFunction, g.logw)

	g.mu.Lock()
	defer g.mu.Unlock()
	if cur, ok := g.functions[key]; ok {
		if cur.sha == sha && cur.env == fingerprint {
			// Another invocation made it meanwhile.
			go rt.Close()
			return cur, nil
		}
		go cur.rt.Close()
	}
	f = &deployedFunction{sha: sha, env: fingerprint, rt: rt}
	g.functions[key] = f
	g.log.Info("function loaded", "function", key, "codeSha256", sha, "timeout", timeout.String(), "logGroup", group)
	return f, nil
}

// functionEnv is a function's environment as Lambda gives it: its own variables, then
// the reserved ones, with AWS_ENDPOINT_URL pointing back at the gateway so that every
// call the function makes goes through it, and credentials of its own, as a Lambda
// gets its role's session: the access key (functionAccessKey) tells the gateway whose
// call it is, and so which role's policies the strict cloud evaluates it against.
func functionEnv(conf *lambdatypes.FunctionConfiguration, region, gatewayURL string) map[string]string {
	env := map[string]string{}
	if conf.Environment != nil {
		for k, v := range conf.Environment.Variables {
			env[k] = v
		}
	}
	name := aws.ToString(conf.FunctionName)
	memory := int32(128)
	if conf.MemorySize != nil {
		memory = *conf.MemorySize
	}
	version := aws.ToString(conf.Version)
	if version == "" {
		version = "$LATEST"
	}
	for k, v := range map[string]string{
		"AWS_REGION":            region,
		"AWS_DEFAULT_REGION":    region,
		"AWS_ACCESS_KEY_ID":     functionAccessKey(region, name),
		"AWS_SECRET_ACCESS_KEY": "amifleet-local",
		"AWS_SESSION_TOKEN":     "amifleet-local",
		"AWS_ENDPOINT_URL":      gatewayURL,
		// The load balancers' DNS names resolve nowhere here: functions reach them
		// through the gateway as an HTTP proxy. Loopback is never proxied.
		"HTTP_PROXY":                      gatewayURL,
		"http_proxy":                      gatewayURL,
		"NO_PROXY":                        "localhost,127.0.0.1",
		"no_proxy":                        "localhost,127.0.0.1",
		"AWS_LAMBDA_FUNCTION_NAME":        name,
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": strconv.Itoa(int(memory)),
		"AWS_LAMBDA_FUNCTION_VERSION":     version,
		"AWS_LAMBDA_LOG_GROUP_NAME":       "/aws/lambda/" + name,
		"AWS_LAMBDA_LOG_STREAM_NAME":      "local/" + name,
		"AWS_LAMBDA_INITIALIZATION_TYPE":  "on-demand",
		"_HANDLER":                        aws.ToString(conf.Handler),
	} {
		env[k] = v
	}
	return env
}

// envFingerprint changes when anything the runtime was made from changes.
func envFingerprint(env map[string]string, conf *lambdatypes.FunctionConfiguration) string {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%s=%s\x00", k, env[k])
	}
	fmt.Fprintf(h, "timeout=%d", aws.ToInt32(conf.Timeout))
	return hex.EncodeToString(h.Sum(nil))
}

// LambdaProxyURL is the gateway's URL with the proxy user that marks a function's
// requests: through it, a request comes from a Lambda's address.
func LambdaProxyURL(gatewayURL string) string {
	u, err := url.Parse(gatewayURL)
	if err != nil {
		return gatewayURL
	}
	u.User = url.UserPassword(lambdaProxyUser, "x")
	return u.String()
}
