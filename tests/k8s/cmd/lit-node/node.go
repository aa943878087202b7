package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
)

const (
	leaseDuration   = 40 * time.Second
	leaseRenew      = 10 * time.Second
	statusHeartbeat = 30 * time.Second
	kubeletVersion  = "v1.34.4-lit"
)

type nodeConfig struct {
	name       string
	kubeconfig string
	listen     string
	tlsCert    string
	tlsKey     string
	clientCA   string
	stateDir   string
	bridge     string
	podNetwork *net.IPNet // on-link for every pod (all nodes' pod ranges)
	podCIDR    *net.IPNet // this node's pod addresses
	cpu        string
	memory     string
	maxPods    string
	gpus       int
	labels     map[string]string
	taints     []corev1.Taint
}

type node struct {
	cfg    nodeConfig
	client kubernetes.Interface
	port   int32

	mu   sync.Mutex
	pods map[string]*podRunner // by pod UID
	ips  map[string]bool       // pod addresses in use
}

func parseNodeFlags(args []string) (nodeConfig, error) {
	var cfg nodeConfig
	fs := flag.NewFlagSet("lit-node run", flag.ContinueOnError)
	fs.StringVar(&cfg.name, "name", "", "node name")
	fs.StringVar(&cfg.kubeconfig, "kubeconfig", "", "kubeconfig of the node's credentials (system:node:<name>)")
	fs.StringVar(&cfg.listen, "listen", "127.0.0.1:10250", "address of the kubelet endpoints (TLS)")
	fs.StringVar(&cfg.tlsCert, "tls-cert", "", "serving certificate")
	fs.StringVar(&cfg.tlsKey, "tls-key", "", "serving key")
	fs.StringVar(&cfg.clientCA, "client-ca", "", "CA that signs the API server's client certificate")
	fs.StringVar(&cfg.stateDir, "state-dir", "", "the node's directory (pods, logs)")
	fs.StringVar(&cfg.bridge, "bridge", "", "bridge the pods' veths join")
	podNetwork := fs.String("pod-network", "", "CIDR on-link in every pod (all nodes' pod ranges)")
	podCIDR := fs.String("pod-cidr", "", "this node's pod addresses")
	fs.StringVar(&cfg.cpu, "cpu", "4", "cpu capacity")
	fs.StringVar(&cfg.memory, "memory", "8Gi", "memory capacity")
	fs.StringVar(&cfg.maxPods, "max-pods", "110", "pods capacity")
	fs.IntVar(&cfg.gpus, "gpus", 0, "nvidia.com/gpu capacity")
	labels := fs.String("labels", "", "k=v,... node labels")
	taints := fs.String("taints", "", "k=v:Effect,... taints registered with the node")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	for _, req := range []struct{ name, v string }{{"name", cfg.name}, {"kubeconfig", cfg.kubeconfig},
		{"tls-cert", cfg.tlsCert}, {"tls-key", cfg.tlsKey}, {"client-ca", cfg.clientCA},
		{"state-dir", cfg.stateDir}, {"bridge", cfg.bridge}} {
		if req.v == "" {
			return cfg, fmt.Errorf("--%s is required", req.name)
		}
	}
	var err error
	if _, cfg.podNetwork, err = net.ParseCIDR(*podNetwork); err != nil {
		return cfg, fmt.Errorf("--pod-network: %w", err)
	}
	if _, cfg.podCIDR, err = net.ParseCIDR(*podCIDR); err != nil {
		return cfg, fmt.Errorf("--pod-cidr: %w", err)
	}
	cfg.labels = map[string]string{}
	for _, kv := range strings.Split(*labels, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			cfg.labels[k] = v
		}
	}
	for _, t := range strings.Split(*taints, ",") {
		if t == "" {
			continue
		}
		kv, effect, ok := strings.Cut(t, ":")
		if !ok {
			return cfg, fmt.Errorf("--taints: %q has no :Effect", t)
		}
		k, v, _ := strings.Cut(kv, "=")
		cfg.taints = append(cfg.taints, corev1.Taint{Key: k, Value: v, Effect: corev1.TaintEffect(effect)})
	}
	return cfg, nil
}

func runNode(args []string) int {
	cfg, err := parseNodeFlags(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "lit-node run: %v\n", err)
		return 2
	}
	restConfig, err := clientcmd.BuildConfigFromFlags("", cfg.kubeconfig)
	if err != nil {
		fmt.Fprintf(os.Stderr, "lit-node run: %v\n", err)
		return 1
	}
	restConfig.UserAgent = "lit-node/" + cfg.name
	client, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		fmt.Fprintf(os.Stderr, "lit-node run: %v\n", err)
		return 1
	}
	n := &node{cfg: cfg, client: client, pods: map[string]*podRunner{}, ips: map[string]bool{}}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()

	listener, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "lit-node run: %v\n", err)
		return 1
	}
	n.port = int32(listener.Addr().(*net.TCPAddr).Port)
	go func() {
		if err := n.serve(ctx, listener); err != nil {
			fmt.Fprintf(os.Stderr, "lit-node run: kubelet endpoints: %v\n", err)
			cancel()
		}
	}()
	if err := n.register(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "lit-node run: registering node %s: %v\n", cfg.name, err)
		return 1
	}
	go n.heartbeat(ctx)
	n.watchPods(ctx)
	fmt.Fprintf(os.Stderr, "lit-node %s: ready on %s\n", cfg.name, listener.Addr())
	<-ctx.Done()
	n.killAll()
	return 0
}

func (n *node) capacity() corev1.ResourceList {
	list := corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse(n.cfg.cpu),
		corev1.ResourceMemory:           resource.MustParse(n.cfg.memory),
		corev1.ResourcePods:             resource.MustParse(n.cfg.maxPods),
		corev1.ResourceEphemeralStorage: resource.MustParse("100Gi"),
	}
	if n.cfg.gpus > 0 {
		list["nvidia.com/gpu"] = *resource.NewQuantity(int64(n.cfg.gpus), resource.DecimalSI)
	}
	return list
}

func (n *node) status(now metav1.Time) corev1.NodeStatus {
	condition := func(t corev1.NodeConditionType, s corev1.ConditionStatus, reason, msg string) corev1.NodeCondition {
		return corev1.NodeCondition{Type: t, Status: s, Reason: reason, Message: msg,
			LastHeartbeatTime: now, LastTransitionTime: now}
	}
	return corev1.NodeStatus{
		Capacity:    n.capacity(),
		Allocatable: n.capacity(),
		Phase:       corev1.NodeRunning,
		Conditions: []corev1.NodeCondition{
			condition(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", "lit-node"),
			condition(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", "lit-node"),
			condition(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID", "lit-node"),
			condition(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady", "lit-node is posting ready status"),
		},
		// The API server reaches the node's endpoints at InternalIP:kubeletEndpoint.port: loopback.
		Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: "127.0.0.1"},
			{Type: corev1.NodeHostName, Address: n.cfg.name},
		},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: n.port}},
		NodeInfo: corev1.NodeSystemInfo{
			MachineID: n.cfg.name, SystemUUID: n.cfg.name, BootID: n.cfg.name,
			KernelVersion: kernelVersion(), OSImage: "lit-node (the machine's root filesystem)",
			ContainerRuntimeVersion: "lit-node://1", KubeletVersion: kubeletVersion,
			OperatingSystem: "linux", Architecture: "amd64",
		},
	}
}

func kernelVersion() string {
	var u syscall.Utsname
	if syscall.Uname(&u) != nil {
		return ""
	}
	b := make([]byte, 0, len(u.Release))
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		b = append(b, byte(c))
	}
	return string(b)
}

// register creates the Node (labels and taints as the kubelet's --node-labels/--register-with-taints would)
// and posts its status.
func (n *node) register(ctx context.Context) error {
	labels := map[string]string{
		"kubernetes.io/hostname": n.cfg.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
	}
	for k, v := range n.cfg.labels {
		labels[k] = v
	}
	obj := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: n.cfg.name, Labels: labels},
		Spec:       corev1.NodeSpec{Taints: n.cfg.taints, PodCIDR: n.cfg.podCIDR.String(), PodCIDRs: []string{n.cfg.podCIDR.String()}},
	}
	var err error
	for attempt := 0; attempt < 60; attempt++ {
		_, err = n.client.CoreV1().Nodes().Create(ctx, obj, metav1.CreateOptions{})
		if err == nil || apierrors.IsAlreadyExists(err) {
			err = nil
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	if err != nil {
		return err
	}
	return n.postStatus(ctx)
}

func (n *node) postStatus(ctx context.Context) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := n.client.CoreV1().Nodes().Get(ctx, n.cfg.name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		now := metav1.Now()
		st := n.status(now)
		// Keep each condition's transition time while its status holds.
		for i, c := range st.Conditions {
			for _, old := range cur.Status.Conditions {
				if old.Type == c.Type && old.Status == c.Status {
					st.Conditions[i].LastTransitionTime = old.LastTransitionTime
				}
			}
		}
		cur.Status = st
		_, err = n.client.CoreV1().Nodes().UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		return err
	})
}

// heartbeat renews the node's Lease in kube-node-lease (what the node lifecycle controller reads) and posts
// the status now and then.
func (n *node) heartbeat(ctx context.Context) {
	leases := n.client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	lastStatus := time.Now()
	tick := time.NewTicker(leaseRenew)
	defer tick.Stop()
	for {
		now := metav1.NewMicroTime(time.Now())
		lease, err := leases.Get(ctx, n.cfg.name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			lease = &coordinationv1.Lease{
				ObjectMeta: metav1.ObjectMeta{Name: n.cfg.name, Namespace: corev1.NamespaceNodeLease},
				Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(n.cfg.name),
					LeaseDurationSeconds: ptr.To(int32(leaseDuration.Seconds())), RenewTime: &now},
			}
			if nodeObj, err := n.client.CoreV1().Nodes().Get(ctx, n.cfg.name, metav1.GetOptions{}); err == nil {
				lease.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node",
					Name: nodeObj.Name, UID: nodeObj.UID}}
			}
			_, err = leases.Create(ctx, lease, metav1.CreateOptions{})
			if err != nil && ctx.Err() == nil {
				fmt.Fprintf(os.Stderr, "lit-node %s: lease: %v\n", n.cfg.name, err)
			}
		case err == nil:
			lease.Spec.RenewTime = &now
			if _, err := leases.Update(ctx, lease, metav1.UpdateOptions{}); err != nil && ctx.Err() == nil {
				fmt.Fprintf(os.Stderr, "lit-node %s: lease: %v\n", n.cfg.name, err)
			}
		default:
			if ctx.Err() == nil {
				fmt.Fprintf(os.Stderr, "lit-node %s: lease: %v\n", n.cfg.name, err)
			}
		}
		if time.Since(lastStatus) >= statusHeartbeat {
			if err := n.postStatus(ctx); err != nil && ctx.Err() == nil {
				fmt.Fprintf(os.Stderr, "lit-node %s: status: %v\n", n.cfg.name, err)
			}
			lastStatus = time.Now()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// watchPods follows the pods bound to this node (the only ones the Node authorizer lets it list).
func (n *node) watchPods(ctx context.Context) {
	selector := fields.OneTermEqualSelector("spec.nodeName", n.cfg.name).String()
	factory := informers.NewSharedInformerFactoryWithOptions(n.client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = selector }))
	informer := factory.Core().V1().Pods().Informer()
	_, _ = informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { n.sync(ctx, obj.(*corev1.Pod)) },
		UpdateFunc: func(_, obj any) { n.sync(ctx, obj.(*corev1.Pod)) },
		DeleteFunc: func(obj any) {
			if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			if pod, ok := obj.(*corev1.Pod); ok {
				n.forget(pod)
			}
		},
	})
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
}

// sync starts a runner for a pod seen for the first time and tells a runner about a deletion request.
func (n *node) sync(ctx context.Context, pod *corev1.Pod) {
	n.mu.Lock()
	r, known := n.pods[string(pod.UID)]
	if !known {
		r = newPodRunner(n, pod)
		n.pods[string(pod.UID)] = r
	}
	n.mu.Unlock()
	if !known {
		go r.run(ctx)
	}
	if pod.DeletionTimestamp != nil {
		r.requestDeletion(pod)
	}
}

// forget kills what is left of a pod the API no longer has (deleted by force, or by us at the end).
func (n *node) forget(pod *corev1.Pod) {
	n.mu.Lock()
	r := n.pods[string(pod.UID)]
	n.mu.Unlock()
	if r != nil {
		r.gone()
	}
}

func (n *node) release(r *podRunner) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.pods, string(r.uid))
	if r.ip != "" {
		delete(n.ips, r.ip)
	}
}

func (n *node) lookup(namespace, name string) *podRunner {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, r := range n.pods {
		if r.namespace == namespace && r.name == name {
			return r
		}
	}
	return nil
}

// allocateIP takes the first free address of the node's pod range (.2 and up: .1 may be the bridge's).
func (n *node) allocateIP() (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	base := n.cfg.podCIDR.IP.To4()
	ones, bits := n.cfg.podCIDR.Mask.Size()
	size := 1 << (bits - ones)
	for i := 2; i < size-1; i++ {
		ip := net.IPv4(base[0], base[1], base[2]+byte(i>>8), base[3]+byte(i&0xff)).String()
		if !n.ips[ip] {
			n.ips[ip] = true
			return ip, nil
		}
	}
	return "", fmt.Errorf("no free address left in %s", n.cfg.podCIDR)
}

func (n *node) killAll() {
	n.mu.Lock()
	runners := make([]*podRunner, 0, len(n.pods))
	for _, r := range n.pods {
		runners = append(runners, r)
	}
	n.mu.Unlock()
	for _, r := range runners {
		r.kill(syscall.SIGKILL)
	}
}
