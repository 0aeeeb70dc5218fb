// Command libcni-driver runs a CNI network list through libcni, the Go library container runtimes use, so that
// libcni's own config loading, version checks and result parsing judge a plugin's output. It is danm's
// conformance driver (host/cni/tests/libcni.rs); it is built offline from Debian's golang-github-appc-cni-dev.
//
// Usage: libcni-driver -verb add|check|del|validate -confdir DIR -name NET -netns PATH -id CID
//
//	[-ifname eth0] [-path DIR[:DIR]] [-cachedir DIR] [-args K=V;K=V]
//
// ADD prints the result JSON libcni parsed (re-encoded by libcni for the list's cniVersion); VALIDATE prints the
// versions the plugins reported. Failures go to stderr with exit code 1.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
)

func fail(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", a...)
	os.Exit(1)
}

func main() {
	verb := flag.String("verb", "", "add, check, del or validate")
	confDir := flag.String("confdir", "", "directory holding the .conflist")
	name := flag.String("name", "", "network (conflist) name")
	netns := flag.String("netns", "", "network namespace path")
	id := flag.String("id", "", "container id")
	ifName := flag.String("ifname", "eth0", "interface name (CNI_IFNAME)")
	path := flag.String("path", "/usr/lib/cni", "plugin search path, colon separated")
	cacheDir := flag.String("cachedir", "", "libcni result cache directory")
	args := flag.String("args", "", "CNI_ARGS as K=V;K=V")
	flag.Parse()

	list, err := libcni.LoadConfList(*confDir, *name)
	if err != nil {
		fail("loading conflist %q from %s: %v", *name, *confDir, err)
	}
	cni := libcni.NewCNIConfigWithCacheDir(filepath.SplitList(*path), *cacheDir, nil)
	rt := &libcni.RuntimeConf{ContainerID: *id, NetNS: *netns, IfName: *ifName}
	for _, kv := range strings.Split(*args, ";") {
		if kv == "" {
			continue
		}
		parts := strings.SplitN(kv, "=", 2)
		if len(parts) != 2 {
			fail("bad CNI_ARGS pair %q", kv)
		}
		rt.Args = append(rt.Args, [2]string{parts[0], parts[1]})
	}
	ctx := context.Background()

	switch *verb {
	case "add":
		result, err := cni.AddNetworkList(ctx, list, rt)
		if err != nil {
			fail("ADD %s (cniVersion %s): %v", list.Name, list.CNIVersion, err)
		}
		if result.Version() != list.CNIVersion {
			fail("ADD: libcni returned a %s result for a %s list", result.Version(), list.CNIVersion)
		}
		out, err := json.Marshal(result)
		if err != nil {
			fail("ADD: encoding the result: %v", err)
		}
		fmt.Println(string(out))
	case "check":
		if err := cni.CheckNetworkList(ctx, list, rt); err != nil {
			fail("CHECK %s (cniVersion %s): %v", list.Name, list.CNIVersion, err)
		}
	case "del":
		if err := cni.DelNetworkList(ctx, list, rt); err != nil {
			fail("DEL %s (cniVersion %s): %v", list.Name, list.CNIVersion, err)
		}
	case "validate":
		caps, err := cni.ValidateNetworkList(ctx, list)
		if err != nil {
			fail("VALIDATE %s (cniVersion %s): %v", list.Name, list.CNIVersion, err)
		}
		info, err := cni.GetVersionInfo(ctx, list.Plugins[0].Network.Type)
		if err != nil {
			fail("VERSION %s: %v", list.Plugins[0].Network.Type, err)
		}
		out, _ := json.Marshal(map[string]interface{}{"capabilities": caps, "supportedVersions": info.SupportedVersions()})
		fmt.Println(string(out))
	default:
		fail("unknown -verb %q (add, check, del, validate)", *verb)
	}
}
