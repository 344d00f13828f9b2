package localcloud

import "net/http"

// ec2Refuses answers what EC2 and ELB refuse where moto does not (to be written).
func (g *Gateway) ec2Refuses(w http.ResponseWriter, r *http.Request, call apiCall) bool {
	return false
}

// strictSaw is told each watched call's answer from moto (to be written).
func (g *Gateway) strictSaw(call apiCall, body []byte) {}
