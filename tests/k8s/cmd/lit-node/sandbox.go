package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// sandboxConfig is what the node hands a pod's PID 1 (pod-init), as a JSON file in the pod's directory.
type sandboxConfig struct {
	Argv     []string `json:"argv"`
	Env      []string `json:"env"`
	WorkDir  string   `json:"workDir"`
	Hostname string   `json:"hostname"`
	PodDir   string   `json:"podDir"`
}

// Where the pod's directory on the node appears inside the pod (events from the stand-ins land there).
const inPodDir = "/run/lit-pod"

var (
	standinNames = []string{"shutdown", "poweroff", "halt", "reboot", "telinit", "systemctl"}
	standinDirs  = []string{"/sbin", "/usr/sbin", "/bin", "/usr/bin"}
	// Directories each pod gets empty and private (the rest of the machine is read-only in a pod).
	privateTmpfs = [][2]string{
		{"/root", "0700"}, {"/tmp", "1777"}, {"/var/tmp", "1777"}, {"/home", "0755"}, {"/srv", "0755"},
		{"/var/log", "0755"},
	}
	// Taken out of the bounding set of everything a pod runs (as tests/testbed.py does for its sshd): no
	// mounts or unmounts (the read-only root and private directories stay), no route or link changes, no
	// reboot, clock, modules, raw disks or device nodes.
	droppedCaps = []uintptr{9, 12, 16, 17, 20, 21, 22, 25, 27, 30, 32, 33, 34, 38, 39, 40}
)

const standinScript = `#!/bin/sh
# lit-node stand-in: records the command, stops nothing.
n=${0##*/}
printf '%s\t%s\n' "$(date +%s.%N 2>/dev/null)" "$n${*:+ $*}" >> ` + inPodDir + `/events
exit 0
`

// podInit is PID 1 of a pod: it waits for the node to give it its address, sets up the pod's network and
// mounts, starts the container command, forwards termination signals to every process of the pod, reaps
// orphans, and exits with the command's status (128+signal when a signal ended it).
func podInit(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: lit-node pod-init CONFIG")
		return 2
	}
	var cfg sandboxConfig
	data, err := os.ReadFile(args[0])
	if err == nil {
		err = json.Unmarshal(data, &cfg)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "lit-node pod-init: reading %s: %v\n", args[0], err)
		return 126
	}
	// The node writes the pod's address (or an empty line) on fd 3 once eth0 is in our network namespace.
	go2 := os.NewFile(3, "network")
	line, err := bufio.NewReader(go2).ReadString('\n')
	go2.Close()
	if err != nil {
		fmt.Fprintf(os.Stderr, "lit-node pod-init: the node gave no network: %v\n", err)
		return 126
	}
	if err := setupNetwork(strings.TrimSpace(line)); err != nil {
		fmt.Fprintf(os.Stderr, "lit-node pod-init: network: %v\n", err)
		return 126
	}
	if err := setupMounts(&cfg); err != nil {
		fmt.Fprintf(os.Stderr, "lit-node pod-init: mounts: %v\n", err)
		return 126
	}
	if cfg.Hostname != "" {
		_ = unix.Sethostname([]byte(cfg.Hostname))
	}

	signals := make(chan os.Signal, 16)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGCHLD)
	self, _ := os.Executable()
	child, err := os.StartProcess(self, append([]string{"lit-node", "pod-exec", "--workdir", cfg.WorkDir, "--"}, cfg.Argv...),
		&os.ProcAttr{Env: cfg.Env, Files: []*os.File{devNull(), os.Stdout, os.Stderr}})
	if err != nil {
		fmt.Fprintf(os.Stderr, "lit-node pod-init: starting %q: %v\n", cfg.Argv, err)
		return 127
	}
	// Tell the node the container runs (fd 4): it reports the pod Running from now on.
	if ready := os.NewFile(4, "ready"); ready != nil {
		_, _ = ready.WriteString("started\n")
		ready.Close()
	}
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			// kill(-1) in a PID namespace reaches every process in it but its init: the whole pod.
			_ = syscall.Kill(-1, sig.(syscall.Signal))
			continue
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if err != nil || pid <= 0 {
				break
			}
			if pid == child.Pid {
				_ = syscall.Kill(-1, syscall.SIGKILL)
				if ws.Signaled() {
					return 128 + int(ws.Signal())
				}
				return ws.ExitStatus()
			}
		}
	}
	return 0
}

func devNull() *os.File {
	f, err := os.Open(os.DevNull)
	if err != nil {
		return nil
	}
	return f
}

func setupNetwork(address string) error {
	cmds := [][]string{{"link", "set", "lo", "up"}}
	if address != "" {
		cmds = append(cmds, []string{"addr", "add", address, "dev", "eth0"}, []string{"link", "set", "eth0", "up"})
	}
	for _, c := range cmds {
		if out, err := exec.Command("ip", c...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(c, " "), err, out)
		}
	}
	return nil
}

func mount(src, target, fstype string, flags uintptr, data string) error {
	if err := unix.Mount(src, target, fstype, flags, data); err != nil {
		return fmt.Errorf("mount %q on %q (%s): %w", src, target, fstype, err)
	}
	return nil
}

func tmpfs(target, mode string) error {
	return mount("lit-pod", target, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode="+mode)
}

func bindReadOnly(path string) error {
	if err := mount(path, path, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return err
	}
	return mount("", path, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, "")
}

// setupMounts makes the pod's view of the machine, in the pod's own mount namespace (nothing propagates
// back): the pod's directory at /run/lit-pod, stand-ins over the commands that would stop the machine,
// private /run, /root, /tmp, ..., a minimal /dev, its own /proc, read-only /sys and /proc/sys, and the rest
// of the machine read-only.
func setupMounts(cfg *sandboxConfig) error {
	if err := mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return err
	}
	podDir, err := unix.Open(cfg.PodDir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", cfg.PodDir, err)
	}
	if err := tmpfs("/run", "0755"); err != nil {
		return err
	}
	if err := os.MkdirAll(inPodDir, 0o755); err != nil {
		return err
	}
	if err := mount(fmt.Sprintf("/proc/self/fd/%d", podDir), inPodDir, "", unix.MS_BIND, ""); err != nil {
		return err
	}
	unix.Close(podDir)
	standin := filepath.Join(inPodDir, "standin")
	if err := os.WriteFile(standin, []byte(standinScript), 0o755); err != nil {
		return err
	}
	done := map[string]bool{}
	for _, d := range standinDirs {
		for _, n := range standinNames {
			real, err := filepath.EvalSymlinks(filepath.Join(d, n))
			if err != nil || done[real] {
				continue
			}
			if st, err := os.Stat(real); err != nil || !st.Mode().IsRegular() {
				continue
			}
			if err := mount(standin, real, "", unix.MS_BIND, ""); err != nil {
				return err
			}
			done[real] = true
		}
	}
	for _, t := range privateTmpfs {
		if st, err := os.Lstat(t[0]); err == nil && st.IsDir() {
			if err := tmpfs(t[0], t[1]); err != nil {
				return err
			}
		}
	}
	if err := minimalDev(); err != nil {
		return err
	}
	if err := mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return err
	}
	for _, p := range []string{"/proc/sys", "/proc/sysrq-trigger", "/sys"} {
		if _, err := os.Stat(p); err == nil {
			if err := bindReadOnly(p); err != nil {
				return err
			}
		}
	}
	if cfg.WorkDir != "" {
		_ = os.MkdirAll(cfg.WorkDir, 0o755) // where it can be made: under a private directory
	}
	return mount("", "/", "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, "")
}

// minimalDev replaces /dev by a tmpfs with the harmless devices only: no disks, no kmsg, its own ptys.
func minimalDev() error {
	stage := "/run/lit-pod-dev"
	if err := os.MkdirAll(stage, 0o755); err != nil {
		return err
	}
	if err := tmpfs(stage, "0755"); err != nil {
		return err
	}
	for _, n := range []string{"null", "zero", "full", "random", "urandom", "tty"} {
		target := filepath.Join(stage, n)
		if err := os.WriteFile(target, nil, 0o666); err != nil {
			return err
		}
		if err := mount("/dev/"+n, target, "", unix.MS_BIND, ""); err != nil {
			return err
		}
	}
	if err := os.Mkdir(stage+"/pts", 0o755); err != nil {
		return err
	}
	if err := mount("devpts", stage+"/pts", "devpts", unix.MS_NOSUID|unix.MS_NOEXEC,
		"newinstance,ptmxmode=0666,mode=0620,gid=5"); err != nil {
		return err
	}
	if err := os.Symlink("pts/ptmx", stage+"/ptmx"); err != nil {
		return err
	}
	if err := os.Mkdir(stage+"/shm", 0o1777); err != nil {
		return err
	}
	if err := tmpfs(stage+"/shm", "1777"); err != nil {
		return err
	}
	for n, t := range map[string]string{"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0",
		"stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"} {
		if err := os.Symlink(t, filepath.Join(stage, n)); err != nil {
			return err
		}
	}
	return mount(stage, "/dev", "", unix.MS_MOVE, "")
}

// podExec runs inside a pod's namespaces (as the container's command, or under nsenter for an exec): it
// drops the capabilities a pod must not have, enters the working directory and execs the command.
func podExec(args []string) int {
	workDir := ""
	for len(args) > 0 && args[0] != "--" {
		if args[0] == "--workdir" && len(args) > 1 {
			workDir, args = args[1], args[2:]
			continue
		}
		fmt.Fprintf(os.Stderr, "lit-node pod-exec: unknown option %q\n", args[0])
		return 2
	}
	if len(args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: lit-node pod-exec [--workdir D] -- CMD [ARG...]")
		return 2
	}
	argv := args[1:]
	// The bounding set is per thread: drop it on the thread that will call execve.
	runtime.LockOSThread()
	for _, c := range droppedCaps {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, c, 0, 0, 0); err != nil && err != unix.EINVAL {
			fmt.Fprintf(os.Stderr, "lit-node pod-exec: cannot drop capability %d: %v\n", c, err)
			return 126
		}
	}
	if workDir != "" {
		if err := os.Chdir(workDir); err != nil {
			fmt.Fprintf(os.Stderr, "lit-node pod-exec: working directory %s: %v\n", workDir, err)
			return 126
		}
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		fmt.Fprintf(os.Stderr, "lit-node pod-exec: %v\n", err)
		return 127
	}
	err = syscall.Exec(path, argv, os.Environ())
	fmt.Fprintf(os.Stderr, "lit-node pod-exec: exec %s: %v\n", path, err)
	return 126
}
