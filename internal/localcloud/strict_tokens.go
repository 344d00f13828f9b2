package localcloud

// RunInstances' ClientToken as EC2 keeps it (Strictness.ClientTokens); moto stores the
// token and launches again. A token names one launch in its region for 24 hours: the
// same token with the same parameters answers that launch's reservation again (the
// same instance ids, even once they are terminated); with other parameters it fails
// with IdempotentParameterMismatch. Launches are serialized per region
// (strictLaunch), so two concurrent calls with one token make one launch.

import (
	"net/http"
	"time"
)

// clientTokenLifetime is how long EC2 keeps a token.
const clientTokenLifetime = 24 * time.Hour

// launchToken is the launch a token made.
type launchToken struct {
	params string    // fingerprint of the request's parameters but the token
	answer []byte    // moto's answer (the reservation)
	at     time.Time // when
}

func launchParams(call apiCall) string {
	return fingerprint(canonicalForm(call.Form, "ClientToken"))
}

// answerToken answers a RunInstances whose token already launched: its reservation,
// or IdempotentParameterMismatch. Otherwise it notes the launch about to be made (as
// asked, before any check changes it) and lets it through.
func (g *Gateway) answerToken(w http.ResponseWriter, call apiCall, region string) bool {
	token := call.Form.Get("ClientToken")
	if token == "" {
		return false
	}
	s := g.strictState()
	key := region + "/" + token
	params := launchParams(call)
	s.mu.Lock()
	t := s.tokens[key]
	if t != nil && s.now().Sub(t.at) > clientTokenLifetime {
		delete(s.tokens, key)
		t = nil
	}
	if t == nil {
		s.launching[key] = params
	}
	s.mu.Unlock()
	switch {
	case t == nil:
		return false
	case t.params != params:
		g.refuse(w, call, CheckClientTokens, token, "IdempotentParameterMismatch",
			"Arguments on this idempotent request are inconsistent with arguments used in previous request(s).")
	default:
		g.strictLog().Info("token's launch answered again", "check", CheckClientTokens, "call", call.key(), "resource", token)
		writeEC2Answer(w, withNewRequestID(t.answer))
	}
	return true
}

// rememberToken keeps the reservation a token's launch made.
func (g *Gateway) rememberToken(call apiCall, body []byte) {
	token := call.Form.Get("ClientToken")
	if token == "" {
		return
	}
	s := g.strictState()
	key := call.Region + "/" + token
	s.mu.Lock()
	defer s.mu.Unlock()
	if params, ok := s.launching[key]; ok {
		s.tokens[key] = &launchToken{params: params, answer: body, at: s.now()}
	}
}

// launched ends a launch: its token is either kept (rememberToken) or free again.
func (g *Gateway) launched(call apiCall, region string) {
	if token := call.Form.Get("ClientToken"); token != "" {
		s := g.strictState()
		s.mu.Lock()
		delete(s.launching, region+"/"+token)
		s.mu.Unlock()
	}
}
