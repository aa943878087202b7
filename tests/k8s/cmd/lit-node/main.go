// Command lit-node is the test cluster's node: a stand-in for the kubelet that runs each pod's container
// command from the machine's own root filesystem (images are ignored) in new network, PID, mount, UTS and
// IPC namespaces, and serves the kubelet's /exec, /portForward and /containerLogs endpoints with Kubernetes' own
// streaming code, so that the API server's pods/exec, pods/portforward and pods/log work through it.
//
// Subcommands:
//
//	lit-node run --name N --kubeconfig F ...   the node (see flags)
//	lit-node pod-init CONFIG                   PID 1 of a pod (started by run, in the pod's new namespaces)
//	lit-node pod-exec --workdir D -- CMD...    drops capabilities and execs CMD (inside a pod's namespaces)
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: lit-node run|pod-init|pod-exec ...")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "run":
		os.Exit(runNode(os.Args[2:]))
	case "pod-init":
		os.Exit(podInit(os.Args[2:]))
	case "pod-exec":
		os.Exit(podExec(os.Args[2:]))
	default:
		fmt.Fprintf(os.Stderr, "lit-node: unknown subcommand %q\n", os.Args[1])
		os.Exit(2)
	}
}
