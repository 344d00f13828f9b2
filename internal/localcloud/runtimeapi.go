package localcloud

// The Lambda Runtime API a sandbox serves to its bootstrap process
// (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html): the next
// invocation, its response or error, and an init error.

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// serveRuntimeAPI is the part of the Lambda Runtime API that runtimes use: next,
// response, error, and init error.
func (sb *sandbox) serveRuntimeAPI(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, runtimeAPIPrefix)
	switch {
	case r.Method == http.MethodGet && path == "invocation/next":
		sb.serveNext(w, r)
	case r.Method == http.MethodPost && path == "init/error":
		body, _ := io.ReadAll(r.Body)
		sb.mu.Lock()
		sb.initErr = functionErrorBody(body, r.Header.Get("Lambda-Runtime-Function-Error-Type"))
		sb.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	case r.Method == http.MethodPost && strings.HasPrefix(path, "invocation/"):
		id, what, ok := strings.Cut(strings.TrimPrefix(path, "invocation/"), "/")
		if !ok || (what != "response" && what != "error") {
			http.Error(w, `{"errorType":"InvalidRequest"}`, http.StatusNotFound)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		sb.mu.Lock()
		inv := sb.current
		if inv != nil && inv.id == id {
			sb.current = nil
		} else {
			inv = nil
		}
		sb.mu.Unlock()
		if inv == nil {
			http.Error(w, `{"errorType":"InvalidRequestID","errorMessage":"unknown or finished request id"}`, http.StatusBadRequest)
			return
		}
		res := InvokeResult{Payload: body}
		if what == "error" {
			res = InvokeResult{Payload: functionErrorBody(body, r.Header.Get("Lambda-Runtime-Function-Error-Type")), FunctionError: FunctionErrorUnhandled}
		}
		inv.done <- res
		w.WriteHeader(http.StatusAccepted)
	default:
		http.Error(w, `{"errorType":"InvalidRequest"}`, http.StatusNotFound)
	}
}

func (sb *sandbox) serveNext(w http.ResponseWriter, r *http.Request) {
	select {
	case inv := <-sb.next:
		sb.mu.Lock()
		sb.current = inv
		sb.mu.Unlock()
		deadline := time.Now().Add(sb.cfg.Timeout)
		h := w.Header()
		h.Set("Lambda-Runtime-Aws-Request-Id", inv.id)
		h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(deadline.UnixMilli(), 10))
		h.Set("Lambda-Runtime-Invoked-Function-Arn", sb.cfg.ARN)
		h.Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(inv.payload)
	case <-r.Context().Done():
	case <-sb.exited:
	}
}

// functionErrorBody is the error JSON the caller gets: the runtime's own body when it
// is JSON, else one built from the error type header.
func functionErrorBody(body []byte, errorType string) []byte {
	if json.Valid(body) && len(bytes.TrimSpace(body)) > 0 {
		return body
	}
	if errorType == "" {
		errorType = "Runtime.Unknown"
	}
	return errorResult(errorType, string(body)).Payload
}
