package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"k8s.io/kubernetes/third_party/forked/golang/expansion"
	"k8s.io/utils/ptr"
)

const (
	defaultPath    = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	gpuResource    = "nvidia.com/gpu"
	maxRestartWait = 10 * time.Second
)

// podRunner runs one pod's (first) container, restarts it as the restart policy says, reports its status
// and carries out its deletion as the kubelet does.
type podRunner struct {
	n         *node
	uid       types.UID
	namespace string
	name      string
	dir       string
	logPath   string

	mu           sync.Mutex
	pod          *corev1.Pod
	ip           string
	env          []string
	workDir      string
	proc         *os.Process
	exited       chan struct{} // closed when the current process has exited
	done         bool          // the container ended for good (or never started)
	deleting     bool
	restartCount int32
	lastExit     int
	wake         chan struct{} // cuts a restart back-off short on deletion
}

func newPodRunner(n *node, pod *corev1.Pod) *podRunner {
	dir := filepath.Join(n.cfg.stateDir, "pods", fmt.Sprintf("%s_%s_%s", pod.Namespace, pod.Name, pod.UID))
	return &podRunner{n: n, uid: pod.UID, namespace: pod.Namespace, name: pod.Name, dir: dir,
		logPath: filepath.Join(dir, "container.log"), pod: pod.DeepCopy(), wake: make(chan struct{})}
}

func (r *podRunner) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "lit-node %s: pod %s/%s: %s\n", r.n.cfg.name, r.namespace, r.name, fmt.Sprintf(format, args...))
}

func (r *podRunner) run(ctx context.Context) {
	pod := r.snapshot()
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		r.finish()
		return
	}
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		r.logf("%v", err)
		return
	}
	c := pod.Spec.Containers[0]
	ip, err := r.n.allocateIP()
	if err != nil {
		r.waitingForever(ctx, "CreatePodSandboxError", err.Error())
		return
	}
	r.mu.Lock()
	r.ip = ip
	r.mu.Unlock()
	env, argv, err := r.resolve(ctx, pod, c)
	if err == nil && len(argv) == 0 {
		err = errors.New("lit-node runs no images: the container needs a command")
	}
	if err != nil {
		r.waitingForever(ctx, "CreateContainerConfigError", err.Error())
		return
	}
	workDir := c.WorkingDir
	if workDir == "" {
		workDir = "/"
	}
	r.mu.Lock()
	r.env, r.workDir = env, workDir
	r.mu.Unlock()

	backoff := time.Second
	for {
		if r.isDeleting() {
			r.finish()
			return
		}
		started := metav1.Now()
		if err := r.start(pod, argv); err != nil {
			r.logf("start: %v", err)
			r.waitingForever(ctx, "RunContainerError", err.Error())
			return
		}
		r.mu.Lock()
		proc, exited, deleting := r.proc, r.exited, r.deleting
		r.mu.Unlock()
		if deleting { // the deletion came while the container was starting
			r.terminate(proc, exited)
		}
		r.report(ctx, func(st *corev1.PodStatus) { r.runningStatus(st, c, started) })
		code := r.wait()
		finished := metav1.Now()
		term := &corev1.ContainerStateTerminated{ExitCode: int32(code), Reason: "Completed",
			StartedAt: started, FinishedAt: finished, ContainerID: r.containerID()}
		if code != 0 {
			term.Reason = "Error"
		}
		policy := pod.Spec.RestartPolicy
		restart := policy == corev1.RestartPolicyAlways || (policy == corev1.RestartPolicyOnFailure && code != 0)
		if !restart || r.isDeleting() {
			r.report(ctx, func(st *corev1.PodStatus) { r.terminatedStatus(st, c, term, restart) })
			r.finish()
			return
		}
		r.mu.Lock()
		r.restartCount++
		r.mu.Unlock()
		r.report(ctx, func(st *corev1.PodStatus) { r.backoffStatus(st, c, term) })
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxRestartWait)
	}
}

func (r *podRunner) snapshot() *corev1.Pod {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pod.DeepCopy()
}

func (r *podRunner) isDeleting() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.deleting
}

func (r *podRunner) containerID() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Sprintf("lit-node://%s-%d", r.uid, r.restartCount)
}

// finish marks the container as ended for good; a pending deletion can then complete at once.
func (r *podRunner) finish() {
	r.mu.Lock()
	r.done = true
	deleting := r.deleting
	r.mu.Unlock()
	if deleting {
		r.deleteObject()
	}
}

// waitingForever reports a container that cannot start (the pod stays Pending, as with the kubelet).
func (r *podRunner) waitingForever(ctx context.Context, reason, message string) {
	r.logf("%s: %s", reason, message)
	pod := r.snapshot()
	r.report(ctx, func(st *corev1.PodStatus) {
		st.Phase = corev1.PodPending
		r.common(st)
		statuses := []corev1.ContainerStatus{}
		for _, c := range pod.Spec.Containers {
			statuses = append(statuses, corev1.ContainerStatus{Name: c.Name, Image: c.Image,
				State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: message}}})
		}
		st.ContainerStatuses = statuses
	})
	r.finish()
}

// resolve computes the container's environment (as the kubelet does: envFrom, then env with $(VAR)
// expansion and fieldRef/configMapKeyRef/secretKeyRef) and its argv (command + args, expanded).
func (r *podRunner) resolve(ctx context.Context, pod *corev1.Pod, c corev1.Container) ([]string, []string, error) {
	vars := map[string]string{"PATH": defaultPath, "HOME": "/root", "HOSTNAME": pod.Name}
	order := []string{"PATH", "HOME", "HOSTNAME"}
	set := func(k, v string) {
		if _, ok := vars[k]; !ok {
			order = append(order, k)
		}
		vars[k] = v
	}
	if q, ok := c.Resources.Limits[gpuResource]; ok && !q.IsZero() {
		// What NVIDIA's device plugin hands a container: the devices it may use (here, made-up ones).
		ids := make([]string, q.Value())
		for i := range ids {
			ids[i] = fmt.Sprintf("GPU-lit-%s-%d", r.n.cfg.name, i)
		}
		set("NVIDIA_VISIBLE_DEVICES", strings.Join(ids, ","))
	}
	core := r.n.client.CoreV1()
	for _, from := range c.EnvFrom {
		var data map[string]string
		switch {
		case from.ConfigMapRef != nil:
			var cm *corev1.ConfigMap
			err := retryTransient(func() (err error) {
				cm, err = core.ConfigMaps(pod.Namespace).Get(ctx, from.ConfigMapRef.Name, metav1.GetOptions{})
				return err
			})
			if err != nil {
				if ptr.Deref(from.ConfigMapRef.Optional, false) && apierrors.IsNotFound(err) {
					continue
				}
				return nil, nil, err
			}
			data = cm.Data
		case from.SecretRef != nil:
			var s *corev1.Secret
			err := retryTransient(func() (err error) {
				s, err = core.Secrets(pod.Namespace).Get(ctx, from.SecretRef.Name, metav1.GetOptions{})
				return err
			})
			if err != nil {
				if ptr.Deref(from.SecretRef.Optional, false) && apierrors.IsNotFound(err) {
					continue
				}
				return nil, nil, err
			}
			data = map[string]string{}
			for k, v := range s.Data {
				data[k] = string(v)
			}
		}
		for k, v := range data {
			set(from.Prefix+k, v)
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			set(e.Name, expansion.Expand(e.Value, expansion.MappingFuncFor(vars)))
			continue
		}
		v, err := r.valueFrom(ctx, pod, e.ValueFrom)
		if err != nil {
			return nil, nil, fmt.Errorf("env %s: %w", e.Name, err)
		}
		set(e.Name, v)
	}
	env := make([]string, 0, len(order))
	for _, k := range order {
		env = append(env, k+"="+vars[k])
	}
	mapping := expansion.MappingFuncFor(vars)
	var argv []string
	for _, a := range append(append([]string{}, c.Command...), c.Args...) {
		argv = append(argv, expansion.Expand(a, mapping))
	}
	return env, argv, nil
}

func (r *podRunner) valueFrom(ctx context.Context, pod *corev1.Pod, src *corev1.EnvVarSource) (string, error) {
	switch {
	case src.FieldRef != nil:
		path := src.FieldRef.FieldPath
		switch {
		case path == "metadata.name":
			return pod.Name, nil
		case path == "metadata.namespace":
			return pod.Namespace, nil
		case path == "metadata.uid":
			return string(pod.UID), nil
		case path == "spec.nodeName":
			return pod.Spec.NodeName, nil
		case path == "spec.serviceAccountName":
			return pod.Spec.ServiceAccountName, nil
		case path == "status.podIP" || path == "status.podIPs":
			return r.ip, nil
		case path == "status.hostIP" || path == "status.hostIPs":
			return "127.0.0.1", nil
		case strings.HasPrefix(path, "metadata.labels['"):
			return pod.Labels[strings.TrimSuffix(strings.TrimPrefix(path, "metadata.labels['"), "']")], nil
		case strings.HasPrefix(path, "metadata.annotations['"):
			return pod.Annotations[strings.TrimSuffix(strings.TrimPrefix(path, "metadata.annotations['"), "']")], nil
		}
		return "", fmt.Errorf("fieldRef %q is not supported by lit-node", path)
	case src.ConfigMapKeyRef != nil:
		ref := src.ConfigMapKeyRef
		var cm *corev1.ConfigMap
		err := retryTransient(func() (err error) {
			cm, err = r.n.client.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
			return err
		})
		if err != nil {
			return "", err
		}
		v, ok := cm.Data[ref.Key]
		if !ok && !ptr.Deref(ref.Optional, false) {
			return "", fmt.Errorf("configmap %s has no key %s", ref.Name, ref.Key)
		}
		return v, nil
	case src.SecretKeyRef != nil:
		ref := src.SecretKeyRef
		var s *corev1.Secret
		err := retryTransient(func() (err error) {
			s, err = r.n.client.CoreV1().Secrets(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
			return err
		})
		if err != nil {
			return "", err
		}
		v, ok := s.Data[ref.Key]
		if !ok && !ptr.Deref(ref.Optional, false) {
			return "", fmt.Errorf("secret %s has no key %s", ref.Name, ref.Key)
		}
		return string(v), nil
	}
	return "", errors.New("only fieldRef, configMapKeyRef and secretKeyRef are supported by lit-node")
}

// start runs pod-init in new namespaces, gives it a veth on the bridge and its address, and records its pid
// (with its start time) in the pod's directory for the harness's cleanup.
func (r *podRunner) start(pod *corev1.Pod, argv []string) error {
	r.mu.Lock()
	cfg := sandboxConfig{Argv: argv, Env: r.env, WorkDir: r.workDir, Hostname: hostname(pod.Name), PodDir: r.dir}
	ip := r.ip
	restarts := r.restartCount
	r.mu.Unlock()
	data, _ := json.Marshal(cfg)
	cfgPath := filepath.Join(r.dir, "sandbox.json")
	if err := os.WriteFile(cfgPath, data, 0o644); err != nil {
		return err
	}
	logFile, err := os.OpenFile(r.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	netR, netW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer netW.Close()
	// pod-init writes one line on fd 4 once the container's process has started in its sandbox (mounts and
	// working directory made): only then is the pod Running, as the kubelet reports a container started.
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer readyR.Close()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self, "pod-init", cfgPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.ExtraFiles = []*os.File{netR, readyW}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNET | syscall.CLONE_NEWPID | syscall.CLONE_NEWNS | syscall.CLONE_NEWUTS |
			syscall.CLONE_NEWIPC,
		Setsid:    true,
		Pdeathsig: syscall.SIGKILL, // a node that dies takes its pods with it
	}
	err = cmd.Start()
	netR.Close()
	readyW.Close()
	if err != nil {
		return err
	}
	pid := cmd.Process.Pid
	if start, err := procStart(pid); err == nil {
		_ = os.WriteFile(filepath.Join(r.dir, "init.pid"), []byte(fmt.Sprintf("%d %s\n", pid, start)), 0o644)
	}
	exited := make(chan struct{})
	r.mu.Lock()
	r.proc, r.exited = cmd.Process, exited
	r.mu.Unlock()
	go func() {
		_ = cmd.Wait()
		r.mu.Lock()
		r.lastExit = exitCode(cmd.ProcessState)
		r.mu.Unlock()
		close(exited)
	}()

	sum := sha256.Sum256([]byte(fmt.Sprintf("%s-%d", r.uid, restarts)))
	hostVeth := "lk" + hex.EncodeToString(sum[:])[:11]
	ones, _ := r.n.cfg.podNetwork.Mask.Size()
	steps := [][]string{
		{"link", "add", hostVeth, "type", "veth", "peer", "name", "eth0", "netns", fmt.Sprint(pid)},
		{"link", "set", hostVeth, "master", r.n.cfg.bridge, "up"},
	}
	for _, s := range steps {
		if out, err := exec.Command("ip", s...).CombinedOutput(); err != nil {
			_ = cmd.Process.Kill()
			return fmt.Errorf("ip %s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
	if _, err = fmt.Fprintf(netW, "%s/%d\n", ip, ones); err != nil {
		return err
	}
	_ = readyR.SetReadDeadline(time.Now().Add(60 * time.Second))
	if _, err := bufio.NewReader(readyR).ReadString('\n'); err != nil {
		// pod-init ended (it says why in the container log) or hung: the container did not start
		return fmt.Errorf("the container did not start: %v", err)
	}
	return nil
}

func hostname(name string) string {
	if len(name) > 63 {
		return name[:63]
	}
	return name
}

func exitCode(ps *os.ProcessState) int {
	if ps == nil {
		return -1
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

func procStart(pid int) (string, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", err
	}
	s := string(data)
	fields := strings.Fields(s[strings.LastIndex(s, ")")+2:])
	if len(fields) < 20 {
		return "", errors.New("short stat")
	}
	return fields[19], nil
}

// wait blocks until the current process has exited and returns its exit code.
func (r *podRunner) wait() int {
	r.mu.Lock()
	exited := r.exited
	r.mu.Unlock()
	<-exited
	r.mu.Lock()
	defer r.mu.Unlock()
	r.proc = nil
	return r.lastExit
}

// initPID is the pid of the pod's PID 1 while its container runs, else 0.
func (r *podRunner) initPID() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc == nil {
		return 0
	}
	return r.proc.Pid
}

// running tells whether the container may still write to its log (running, or restarting).
func (r *podRunner) running() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.done
}

func (r *podRunner) kill(sig syscall.Signal) {
	r.mu.Lock()
	proc := r.proc
	r.mu.Unlock()
	if proc != nil {
		_ = proc.Signal(sig)
	}
}

// requestDeletion carries out a graceful deletion: SIGTERM to every process of the pod (pod-init forwards
// it), SIGKILL when the grace period is over, then the pod object is deleted with grace 0.
func (r *podRunner) requestDeletion(pod *corev1.Pod) {
	r.mu.Lock()
	r.pod = pod.DeepCopy()
	if r.deleting {
		r.mu.Unlock()
		return
	}
	r.deleting = true
	close(r.wake)
	proc, exited, done := r.proc, r.exited, r.done
	r.mu.Unlock()
	if done {
		go r.deleteObject()
		return
	}
	if proc == nil {
		return // between restarts or starting: run() sees `deleting` and finishes or terminates
	}
	r.terminate(proc, exited)
}

// terminate sends SIGTERM to the pod's PID 1 (which forwards it to every process of the pod), then SIGKILL
// once the deletion's grace period is over.
func (r *podRunner) terminate(proc *os.Process, exited chan struct{}) {
	grace := time.Duration(ptr.Deref(r.snapshot().DeletionGracePeriodSeconds, 30)) * time.Second
	go func() {
		_ = proc.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(grace):
			_ = proc.Signal(syscall.SIGKILL)
		}
	}()
}

func (r *podRunner) deleteObject() {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	uid := r.uid
	err := retryTransient(func() error {
		return r.n.client.CoreV1().Pods(r.namespace).Delete(ctx, r.name, metav1.DeleteOptions{
			GracePeriodSeconds: ptr.To(int64(0)), Preconditions: &metav1.Preconditions{UID: &uid}})
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		r.logf("delete: %v", err)
	}
}

// gone: the API has no such pod any more; kill whatever is left and forget the pod.
func (r *podRunner) gone() {
	r.mu.Lock()
	r.deleting = true
	select {
	case <-r.wake:
	default:
		close(r.wake)
	}
	r.mu.Unlock()
	r.kill(syscall.SIGKILL)
	r.n.release(r)
}

// transientBackoff spans about 35 s: long enough for the API server's Node authorizer to learn of a pod just
// bound to this node (its graph follows the pods with an informer of its own, so a node that sees a new pod
// early is refused, "no relationship found between node ... and this object", for a moment).
var transientBackoff = wait.Backoff{Steps: 12, Duration: 100 * time.Millisecond, Factor: 2, Cap: 5 * time.Second}

// retryTransient runs fn again while it fails with a conflict, that early refusal, or an overloaded server.
func retryTransient(fn func() error) error {
	return retry.OnError(transientBackoff, func(err error) bool {
		return apierrors.IsConflict(err) || apierrors.IsForbidden(err) || apierrors.IsServerTimeout(err) ||
			apierrors.IsTimeout(err) || apierrors.IsTooManyRequests(err) || apierrors.IsServiceUnavailable(err) ||
			apierrors.IsInternalError(err)
	}, fn)
}

// report writes the pod's status (get, change, update; again on conflicts).
func (r *podRunner) report(ctx context.Context, change func(*corev1.PodStatus)) {
	pods := r.n.client.CoreV1().Pods(r.namespace)
	err := retryTransient(func() error {
		pod, err := pods.Get(ctx, r.name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if pod.UID != r.uid {
			return nil
		}
		change(&pod.Status)
		_, err = pods.UpdateStatus(ctx, pod, metav1.UpdateOptions{})
		return err
	})
	if err != nil && !apierrors.IsNotFound(err) && ctx.Err() == nil {
		r.logf("status: %v", err)
	}
}

func (r *podRunner) common(st *corev1.PodStatus) {
	r.mu.Lock()
	ip := r.ip
	r.mu.Unlock()
	st.HostIP = "127.0.0.1"
	st.HostIPs = []corev1.HostIP{{IP: "127.0.0.1"}}
	if ip != "" {
		st.PodIP = ip
		st.PodIPs = []corev1.PodIP{{IP: ip}}
	}
	if st.StartTime == nil {
		now := metav1.Now()
		st.StartTime = &now
	}
}

func setCondition(st *corev1.PodStatus, t corev1.PodConditionType, s corev1.ConditionStatus, reason string) {
	now := metav1.Now()
	for i := range st.Conditions {
		if st.Conditions[i].Type == t {
			if st.Conditions[i].Status != s {
				st.Conditions[i].LastTransitionTime = now
			}
			st.Conditions[i].Status, st.Conditions[i].Reason = s, reason
			return
		}
	}
	st.Conditions = append(st.Conditions, corev1.PodCondition{Type: t, Status: s, Reason: reason,
		LastTransitionTime: now})
}

func (r *podRunner) containerStatus(c corev1.Container) corev1.ContainerStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return corev1.ContainerStatus{Name: c.Name, Image: c.Image, ImageID: "lit-node://" + c.Image,
		ContainerID: fmt.Sprintf("lit-node://%s-%d", r.uid, r.restartCount), RestartCount: r.restartCount}
}

func (r *podRunner) setContainer(st *corev1.PodStatus, cs corev1.ContainerStatus) {
	pod := r.snapshot()
	out := []corev1.ContainerStatus{}
	for i, c := range pod.Spec.Containers {
		if i == 0 {
			if len(st.ContainerStatuses) > 0 && st.ContainerStatuses[0].Name == c.Name {
				if cs.LastTerminationState == (corev1.ContainerState{}) {
					cs.LastTerminationState = st.ContainerStatuses[0].LastTerminationState
				}
			}
			out = append(out, cs)
			continue
		}
		out = append(out, corev1.ContainerStatus{Name: c.Name, Image: c.Image, State: corev1.ContainerState{
			Waiting: &corev1.ContainerStateWaiting{Reason: "NotSupported", Message: "lit-node runs the first container only"}}})
	}
	st.ContainerStatuses = out
}

func (r *podRunner) runningStatus(st *corev1.PodStatus, c corev1.Container, started metav1.Time) {
	st.Phase = corev1.PodRunning
	r.common(st)
	for _, t := range []corev1.PodConditionType{corev1.PodReadyToStartContainers, corev1.PodInitialized,
		corev1.ContainersReady, corev1.PodReady} {
		setCondition(st, t, corev1.ConditionTrue, "")
	}
	cs := r.containerStatus(c)
	cs.Ready, cs.Started = true, ptr.To(true)
	cs.State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: started}}
	r.setContainer(st, cs)
}

func (r *podRunner) terminatedStatus(st *corev1.PodStatus, c corev1.Container, term *corev1.ContainerStateTerminated, _ bool) {
	st.Phase = corev1.PodSucceeded
	if term.ExitCode != 0 {
		st.Phase = corev1.PodFailed
	}
	r.common(st)
	setCondition(st, corev1.ContainersReady, corev1.ConditionFalse, "PodCompleted")
	setCondition(st, corev1.PodReady, corev1.ConditionFalse, "PodCompleted")
	setCondition(st, corev1.PodReadyToStartContainers, corev1.ConditionFalse, "")
	cs := r.containerStatus(c)
	cs.Started = ptr.To(false)
	cs.State = corev1.ContainerState{Terminated: term}
	r.setContainer(st, cs)
}

func (r *podRunner) backoffStatus(st *corev1.PodStatus, c corev1.Container, term *corev1.ContainerStateTerminated) {
	st.Phase = corev1.PodRunning
	r.common(st)
	setCondition(st, corev1.ContainersReady, corev1.ConditionFalse, "ContainersNotReady")
	setCondition(st, corev1.PodReady, corev1.ConditionFalse, "ContainersNotReady")
	cs := r.containerStatus(c)
	cs.Started = ptr.To(false)
	cs.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff",
		Message: fmt.Sprintf("back-off restarting failed container %s", c.Name)}}
	cs.LastTerminationState = corev1.ContainerState{Terminated: term}
	r.setContainer(st, cs)
}
