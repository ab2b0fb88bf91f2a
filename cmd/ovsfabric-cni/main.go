// Command ovsfabric-cni is the fabric's CNI plugin (type "ovsfabric"): a thin client that
// forwards each CNI command to fabricd over its API socket, where the endpoint is attached
// with the same code as `fabricctl attach`. See docs/cni.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/ovsfabric/ovsfabric/api"
)

// timeout bounds one command; fabricd's attach waits up to its own limits.
const timeout = 60 * time.Second

// specVersions are the CNI spec versions the plugin speaks.
var specVersions = version.PluginSupports("0.4.0", "1.0.0", "1.1.0")

func main() {
	skel.PluginMainFuncs(skel.CNIFuncs{Add: cmdAdd, Del: cmdDel, Check: cmdCheck, Status: cmdStatus, GC: cmdGC},
		specVersions, "ovsfabric CNI plugin (forwards to fabricd)")
}

// setup parses the configuration and builds the request of a command.
func setup(args *skel.CmdArgs) (NetConf, api.CNIRequest, *api.Client, error) {
	c, err := parseConf(args.StdinData)
	if err != nil {
		return c, api.CNIRequest{}, nil, err
	}
	req, err := request(c, args.ContainerID, args.IfName, args.Netns, args.Args)
	return c, req, api.NewClient(c.Socket), err
}

func cmdAdd(args *skel.CmdArgs) error {
	c, req, cl, err := setup(args)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	r, err := cl.CNIAdd(ctx, req)
	if err != nil {
		return cniError(err, c.Socket, types.ErrTryAgainLater)
	}
	res, err := buildResult(r)
	if err != nil {
		return types.NewError(types.ErrInternal, err.Error(), "")
	}
	return types.PrintResult(res, c.CNIVersion)
}

func cmdDel(args *skel.CmdArgs) error {
	c, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	// DEL needs only the key: arguments an ADD would refuse do not stop a clean-up.
	req := api.CNIRequest{ContainerID: args.ContainerID, IfName: args.IfName, NetNS: args.Netns, Network: c.Network, Config: c.Name}
	cl := api.NewClient(c.Socket)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return cniError(cl.CNIDel(ctx, req), c.Socket, types.ErrTryAgainLater)
}

func cmdCheck(args *skel.CmdArgs) error {
	c, req, cl, err := setup(args)
	if err != nil {
		return err
	}
	if c.RawPrevResult != nil {
		if err := version.ParsePrevResult(&c.PluginConf); err != nil {
			return types.NewError(types.ErrDecodingFailure, fmt.Sprintf("prevResult: %v", err), "")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	r, err := cl.CNICheck(ctx, req)
	if err != nil {
		return cniError(err, c.Socket, types.ErrTryAgainLater)
	}
	return checkPrev(c.PrevResult, r)
}

func cmdStatus(args *skel.CmdArgs) error {
	c, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return cniError(api.NewClient(c.Socket).CNIStatus(ctx, c.Network), c.Socket, types.ErrPluginNotAvailable)
}

func cmdGC(args *skel.CmdArgs) error {
	c, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	req := api.CNIGCRequest{Network: c.Network, Config: c.Name, Valid: []api.CNIGCItem{}}
	for _, v := range c.ValidAttachments {
		req.Valid = append(req.Valid, api.CNIGCItem{ContainerID: v.ContainerID, IfName: v.IfName})
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, err = api.NewClient(c.Socket).CNIGC(ctx, req)
	return cniError(err, c.Socket, types.ErrTryAgainLater)
}

// cniError turns an error of the API client into a CNI error: the code fabricd gave, else
// one from the HTTP status; unreachable is the code when fabricd does not answer.
func cniError(err error, socket string, unreachable uint) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, api.ErrNotRunning) {
		return types.NewError(unreachable, fmt.Sprintf("fabricd is not running: nothing listens on %s", socket), err.Error())
	}
	if errors.Is(err, api.ErrPermission) || errors.Is(err, api.ErrNotFabricd) {
		return types.NewError(unreachable, fmt.Sprintf("cannot talk to fabricd on %s", socket), err.Error())
	}
	if code := api.CNICode(err); code != 0 {
		return types.NewError(code, err.Error(), "")
	}
	var se *api.StatusError
	if errors.As(err, &se) {
		switch {
		case se.Code == http.StatusServiceUnavailable:
			return types.NewError(types.ErrTryAgainLater, se.Message, "")
		case se.Code >= 400 && se.Code < 500:
			return types.NewError(types.ErrInvalidNetworkConfig, se.Message, "")
		}
		return types.NewError(types.ErrInternal, se.Message, "")
	}
	return types.NewError(types.ErrIOFailure, err.Error(), "")
}
