// Command driver runs ADD, CHECK and DEL of a CNI config list through libcni, the library container runtimes use,
// so that libcni's own version checks and result parsing judge the plugin's output. danm's conformance test builds
// it offline against Debian's golang-github-appc-cni-dev.
//
// Usage: driver <conflist> <netns> <containerID> <cacheDir> <binDir>[:<binDir>...] [KEY=VALUE ...]
// Prints the ADD result as JSON on stdout; exits non-zero on the first error, naming the step.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/version"
)

func fail(step string, err error) {
	fmt.Fprintf(os.Stderr, "%s: %v\n", step, err)
	os.Exit(1)
}

func main() {
	if len(os.Args) < 6 {
		fmt.Fprintln(os.Stderr, "usage: driver <conflist> <netns> <containerID> <cacheDir> <binDirs> [KEY=VALUE ...]")
		os.Exit(2)
	}
	list, err := libcni.ConfListFromFile(os.Args[1])
	if err != nil {
		fail("load", err)
	}
	cni := libcni.NewCNIConfigWithCacheDir(strings.Split(os.Args[5], ":"), os.Args[4], nil)
	rt := &libcni.RuntimeConf{ContainerID: os.Args[3], NetNS: os.Args[2], IfName: "eth0"}
	for _, kv := range os.Args[6:] {
		parts := strings.SplitN(kv, "=", 2)
		rt.Args = append(rt.Args, [2]string{parts[0], parts[1]})
	}
	ctx := context.Background()
	res, err := cni.AddNetworkList(ctx, list, rt)
	if err != nil {
		fail("ADD", err)
	}
	out, err := json.Marshal(res)
	if err != nil {
		fail("ADD result", err)
	}
	// CHECK exists from 0.4.0 on; libcni refuses it for older configs.
	if ok, _ := version.GreaterThanOrEqualTo(list.CNIVersion, "0.4.0"); ok {
		if err := cni.CheckNetworkList(ctx, list, rt); err != nil {
			fail("CHECK", err)
		}
	}
	if err := cni.DelNetworkList(ctx, list, rt); err != nil {
		fail("DEL", err)
	}
	fmt.Println(string(out))
}
