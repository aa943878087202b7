package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/types"
	remotecommandconsts "k8s.io/apimachinery/pkg/util/remotecommand"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/kubelet/pkg/cri/streaming/portforward"
	remotecommandserver "k8s.io/kubelet/pkg/cri/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"
)

const (
	// The kubelet's defaults (--streaming-connection-idle-timeout, the CRI streaming server's creation timeout).
	streamIdleTimeout     = 4 * time.Hour
	streamCreationTimeout = 30 * time.Second
	logPollInterval       = 100 * time.Millisecond
)

// serve answers the requests the API server proxies to a kubelet (pods/exec, pods/log, pods/portforward) over TLS, from
// clients with a certificate of the cluster's CA only.
func (n *node) serve(ctx context.Context, listener net.Listener) error {
	caPEM, err := os.ReadFile(n.cfg.clientCA)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("no certificate in %s", n.cfg.clientCA)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/exec/{namespace}/{pod}/{container}", n.handleExec)
	mux.HandleFunc("/containerLogs/{namespace}/{pod}/{container}", n.handleLogs)
	mux.HandleFunc("/portForward/{namespace}/{pod}", n.handlePortForward)
	mux.HandleFunc("/portForward/{namespace}/{pod}/{uid}", n.handlePortForward)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 30 * time.Second,
		TLSConfig:         &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool, MinVersion: tls.VersionTLS12},
		// HTTP/1.1 only: exec upgrades the connection (SPDY), which HTTP/2 cannot carry.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	err = srv.ServeTLS(listener, n.cfg.tlsCert, n.cfg.tlsKey)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func (n *node) handleExec(w http.ResponseWriter, req *http.Request) {
	ns, pod, container := req.PathValue("namespace"), req.PathValue("pod"), req.PathValue("container")
	r := n.lookup(ns, pod)
	if r == nil || r.initPID() == 0 {
		http.Error(w, fmt.Sprintf("container %s of pod %s/%s is not running", container, ns, pod), http.StatusNotFound)
		return
	}
	opts, err := remotecommandserver.NewOptions(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	cmd := req.URL.Query()["command"]
	if len(cmd) == 0 {
		http.Error(w, "no command", http.StatusBadRequest)
		return
	}
	remotecommandserver.ServeExec(w, req, executor{n}, ns+"/"+pod, r.uid, container, cmd, opts,
		streamIdleTimeout, streamCreationTimeout, remotecommandconsts.SupportedStreamingProtocols)
}

// executor runs an exec's command in the pod's namespaces with nsenter, with the container's environment
// and working directory, and without the capabilities a pod must not have (pod-exec).
type executor struct{ n *node }

func (e executor) ExecInContainer(ctx context.Context, name string, _ types.UID, _ string, cmd []string,
	in io.Reader, out, errw io.WriteCloser, _ bool, _ <-chan remotecommand.TerminalSize, _ time.Duration) error {
	ns, podName, _ := strings.Cut(name, "/")
	r := e.n.lookup(ns, podName)
	if r == nil {
		return fmt.Errorf("pod %s not found", name)
	}
	pid := r.initPID()
	if pid == 0 {
		return fmt.Errorf("container of pod %s is not running", name)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	r.mu.Lock()
	env, workDir := r.env, r.workDir
	r.mu.Unlock()
	argv := append([]string{"--target", strconv.Itoa(pid), "--net", "--pid", "--mount", "--uts", "--ipc", "--",
		self, "pod-exec", "--workdir", workDir, "--"}, cmd...)
	c := exec.Command("nsenter", argv...)
	c.Env = env
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if out != nil {
		c.Stdout = out
	}
	if errw != nil {
		c.Stderr = errw
	}
	var stdin io.WriteCloser
	if in != nil {
		if stdin, err = c.StdinPipe(); err != nil {
			return err
		}
	}
	if err := c.Start(); err != nil {
		return err
	}
	if stdin != nil {
		// Not waited for: the client may keep its stdin open after the command ended.
		go func() {
			_, _ = io.Copy(stdin, in)
			_ = stdin.Close()
		}()
	}
	finished := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done(): // the client went away: end the command and what it started
			_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
		case <-finished:
		}
	}()
	err = c.Wait()
	close(finished)
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return utilexec.CodeExitError{Err: err, Code: exitCode(exitErr.ProcessState)}
	}
	return err
}

// handlePortForward serves pods/portforward with the kubelet's own handler: WebSocket clients (the Python
// client; the API server proxies them here as they are) and SPDY (kubectl), each connection dialled to
// localhost:port inside the pod's network namespace.
func (n *node) handlePortForward(w http.ResponseWriter, req *http.Request) {
	ns, pod := req.PathValue("namespace"), req.PathValue("pod")
	r := n.lookup(ns, pod)
	if r == nil || r.initPID() == 0 {
		http.Error(w, fmt.Sprintf("pod %s/%s is not running on this node", ns, pod), http.StatusNotFound)
		return
	}
	opts, err := portforward.NewV4Options(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	portforward.ServePortForward(w, req, forwarder{n}, ns+"/"+pod, r.uid, opts, streamIdleTimeout,
		streamCreationTimeout, portforward.SupportedProtocols)
}

// forwarder connects a port-forward stream to a port in a pod's network namespace, as containerd's CRI does:
// the socket is made on a thread that entered the pod's netns (a socket stays in the namespace it was made in),
// then both directions are copied until one ends.
type forwarder struct{ n *node }

func (f forwarder) PortForward(ctx context.Context, name string, _ types.UID, port int32, stream io.ReadWriteCloser) error {
	ns, podName, _ := strings.Cut(name, "/")
	r := f.n.lookup(ns, podName)
	if r == nil {
		return fmt.Errorf("pod %s not found", name)
	}
	pid := r.initPID()
	if pid == 0 {
		return fmt.Errorf("container of pod %s is not running", name)
	}
	conn, err := dialInNetns(pid, fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return err
	}
	defer conn.Close()
	done := make(chan error, 2)
	go func() {
		_, err := io.Copy(conn, stream)
		if tcp, ok := conn.(*net.TCPConn); ok {
			_ = tcp.CloseWrite() // the client is done sending: the pod's server sees EOF and may still answer
		}
		done <- err
	}()
	go func() {
		_, err := io.Copy(stream, conn)
		done <- err
	}()
	select {
	case err = <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	// The other direction gets a moment to flush what it holds (containerd waits the same second).
	select {
	case <-done:
	case <-time.After(time.Second):
	}
	return err
}

// dialInNetns connects to address from the network namespace of process pid. The calling goroutine's thread
// enters the namespace and goes back; a thread that cannot go back is never reused (it stays locked and ends
// with the goroutine).
func dialInNetns(pid int, address string) (net.Conn, error) {
	target, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
	if err != nil {
		return nil, err
	}
	defer target.Close()
	type result struct {
		conn net.Conn
		err  error
	}
	out := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		own, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			out <- result{nil, err}
			return
		}
		defer own.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			out <- result{nil, fmt.Errorf("entering the pod's network namespace: %w", err)}
			return
		}
		conn, err := net.DialTimeout("tcp", address, 10*time.Second)
		if unix.Setns(int(own.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		out <- result{conn, err}
	}()
	got := <-out
	return got.conn, got.err
}

// handleLogs serves the container's output (stdout and stderr in one stream) with the kubelet's options
// follow, tailLines and limitBytes (timestamps, sinceSeconds and previous are ignored).
func (n *node) handleLogs(w http.ResponseWriter, req *http.Request) {
	ns, pod := req.PathValue("namespace"), req.PathValue("pod")
	r := n.lookup(ns, pod)
	if r == nil {
		http.Error(w, fmt.Sprintf("pod %s/%s is not on this node", ns, pod), http.StatusNotFound)
		return
	}
	f, err := os.Open(r.logPath)
	if err != nil {
		http.Error(w, fmt.Sprintf("container of pod %s/%s has not started", ns, pod), http.StatusBadRequest)
		return
	}
	defer f.Close()
	q := req.URL.Query()
	follow := q.Get("follow") == "true" || q.Get("follow") == "1"
	if tail, err := strconv.Atoi(q.Get("tailLines")); err == nil && tail >= 0 {
		if _, err := f.Seek(tailOffset(r.logPath, tail), io.SeekStart); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
	}
	var dst io.Writer = w
	if limit, err := strconv.ParseInt(q.Get("limitBytes"), 10, 64); err == nil && limit > 0 {
		dst = &limitWriter{w: w, left: limit}
	}
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	reader := bufio.NewReader(f)
	for {
		_, err := io.Copy(dst, reader)
		if flusher != nil {
			flusher.Flush()
		}
		if err != nil { // the client is gone or the limit was reached
			return
		}
		if !follow {
			return
		}
		if !r.running() {
			_, _ = io.Copy(dst, reader) // what the container wrote last
			return
		}
		select {
		case <-req.Context().Done():
			return
		case <-time.After(logPollInterval):
		}
	}
}

// tailOffset is where the last `lines` lines of the file start.
func tailOffset(path string, lines int) int64 {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	end := len(data)
	if end > 0 && data[end-1] == '\n' {
		end--
	}
	for i := 0; i < lines; i++ {
		j := bytes.LastIndexByte(data[:end], '\n')
		if j < 0 {
			return 0
		}
		end = j
	}
	if lines == 0 {
		return int64(len(data))
	}
	return int64(end + 1)
}

type limitWriter struct {
	w    io.Writer
	left int64
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > l.left {
		n, _ := l.w.Write(p[:l.left])
		l.left = 0
		return n, io.EOF
	}
	n, err := l.w.Write(p)
	l.left -= int64(n)
	return n, err
}
