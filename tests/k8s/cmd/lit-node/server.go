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
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/types"
	remotecommandconsts "k8s.io/apimachinery/pkg/util/remotecommand"
	"k8s.io/client-go/tools/remotecommand"
	remotecommandserver "k8s.io/kubelet/pkg/cri/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"
)

const (
	// The kubelet's defaults (--streaming-connection-idle-timeout, the CRI streaming server's creation timeout).
	streamIdleTimeout     = 4 * time.Hour
	streamCreationTimeout = 30 * time.Second
	logPollInterval       = 100 * time.Millisecond
)

// serve answers the requests the API server proxies to a kubelet (pods/exec, pods/log) over TLS, from
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
