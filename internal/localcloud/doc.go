// Package localcloud is amifleet's local cloud: everything needed to run the real
// pipeline on one machine with no AWS account. It starts moto's server (the emulated
// AWS control plane, with the Step Functions interpreter turned on and the known bugs
// of the one moto version it supports worked around), and gives tests and the CLI an
// AWS configuration that points at it.
package localcloud
