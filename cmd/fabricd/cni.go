package main

import (
	"github.com/ovsfabric/ovsfabric/apiserver"
	"github.com/ovsfabric/ovsfabric/endpoint"
)

// The API server serves the CNI plugin's routes only for endpoints that implement them.
var _ apiserver.CNIEndpoints = (*endpoint.Manager)(nil)
