// Command etcd is etcd's server, in a module of its own so that its dependencies do not meet Kubernetes'.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
