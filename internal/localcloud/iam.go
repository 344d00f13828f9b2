package localcloud

import "net/http"

// iamRefuses evaluates a function's call against its role (to be written).
func (g *Gateway) iamRefuses(w http.ResponseWriter, r *http.Request, call apiCall) bool {
	return false
}
