package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// registry is a Debian docker-registry serving plain HTTP on 127.0.0.1,
// with its own config and storage under dir.
type registry struct {
	Addr string // 127.0.0.1:<port>
	dir  string
	proc *process
}

// startRegistry listens on port, or on a free one when port is 0.
func startRegistry(ctx context.Context, dir string, port int) (*registry, error) {
	var err error
	if port == 0 {
		if port, err = freePort(); err != nil {
			return nil, err
		}
	}
	r := &registry{Addr: fmt.Sprintf("127.0.0.1:%d", port), dir: dir}
	storage := filepath.Join(dir, "storage")
	if err := os.MkdirAll(storage, 0o755); err != nil {
		return nil, fmt.Errorf("create registry storage: %w", err)
	}
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`, storage, r.Addr)
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, fmt.Errorf("write registry config: %w", err)
	}
	r.proc, err = startProcess("registry", filepath.Join(dir, "registry.log"), "docker-registry", "serve", cfgPath)
	if err != nil {
		return nil, err
	}
	if err := waitFor(ctx, 30*time.Second, func() error {
		resp, err := http.Get("http://" + r.Addr + "/v2/")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /v2/: %s", resp.Status)
		}
		return nil
	}, r.proc); err != nil {
		r.Stop()
		return nil, fmt.Errorf("registry on %s did not come up: %w", r.Addr, err)
	}
	return r, nil
}

// Stop ends the registry process.
func (r *registry) Stop() {
	if r != nil && r.proc != nil {
		r.proc.Stop(10 * time.Second)
	}
}

// pushBlob uploads one blob (monolithic upload) unless the repository has it.
func (r *registry) pushBlob(ctx context.Context, repo string, b blob) error {
	base := "http://" + r.Addr + "/v2/" + repo + "/blobs/"
	if ok, err := r.exists(ctx, base+b.Digest); err != nil || ok {
		return err
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"uploads/", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("start upload of %s: %w", b.Digest, err)
	}
	drain(resp)
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("start upload of %s: %s", b.Digest, resp.Status)
	}
	loc, err := resp.Location()
	if err != nil {
		return fmt.Errorf("start upload of %s: %w", b.Digest, err)
	}
	q := loc.Query()
	q.Set("digest", b.Digest)
	loc.RawQuery = q.Encode()
	f, err := os.Open(b.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	req, _ = http.NewRequestWithContext(ctx, http.MethodPut, loc.String(), f)
	req.ContentLength = b.Size
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("upload %s: %w", b.Digest, err)
	}
	drain(resp)
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("upload %s: %s", b.Digest, resp.Status)
	}
	return nil
}

func (r *registry) pushManifest(ctx context.Context, repo, tag, mediaType string, body []byte) error {
	u := "http://" + r.Addr + "/v2/" + repo + "/manifests/" + url.PathEscape(tag)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, u, strings.NewReader(string(body)))
	req.Header.Set("Content-Type", mediaType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("push manifest %s:%s: %w", repo, tag, err)
	}
	drain(resp)
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("push manifest %s:%s: %s", repo, tag, resp.Status)
	}
	return nil
}

func (r *registry) exists(ctx context.Context, u string) (bool, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodHead, u, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, fmt.Errorf("HEAD %s: %w", u, err)
	}
	drain(resp)
	return resp.StatusCode == http.StatusOK, nil
}

// push uploads an image's blobs and manifest; the ref is Addr/repo:tag.
func (r *registry) push(ctx context.Context, repo, tag string, img *builtImage) (string, error) {
	for _, b := range append([]blob{img.Config}, img.Layers...) {
		if err := r.pushBlob(ctx, repo, b); err != nil {
			return "", fmt.Errorf("push %s:%s: %w", repo, tag, err)
		}
	}
	if err := r.pushManifest(ctx, repo, tag, img.ManifestType, img.Manifest); err != nil {
		return "", err
	}
	return r.Addr + "/" + repo + ":" + tag, nil
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitFor polls check until it succeeds, the timeout passes, or proc exits.
func waitFor(ctx context.Context, timeout time.Duration, check func() error, proc *process) error {
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = check(); err == nil {
			return nil
		}
		if proc != nil && proc.Exited() {
			return fmt.Errorf("%s exited (log %s): %w", proc.name, proc.logPath, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return err
}

// process is a daemon the harness started; its output goes to a log file.
type process struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
}

func startProcess(name, logPath string, argv ...string) (*process, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create %s log: %w", name, err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait() // the exit is seen through p.done; the log says why
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *process) Pid() int { return p.cmd.Process.Pid }

func (p *process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM, then SIGKILL after grace.
func (p *process) Stop(grace time.Duration) {
	if p.Exited() {
		return
	}
	_ = p.cmd.Process.Signal(termSignal) // it may have just exited; p.done tells
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}
