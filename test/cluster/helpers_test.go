package cluster

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/criserver/criserver/test/e2e/framework"
)

// retryInterval is the pause between retry's attempts.
const retryInterval = 500 * time.Millisecond

// retry calls f until it returns nil or within has passed, then fails t
// with f's last error. Tests wait through it for what the cluster does
// asynchronously (kube-proxy rules, DNS records, probes).
func retry(t testing.TB, within time.Duration, what string, f func() error) {
	t.Helper()
	var last error
	ok := framework.Poll(within, func() bool {
		if last = f(); last != nil {
			time.Sleep(retryInterval) // what f runs (kubectl, crictl, scans) is not free
		}
		return last == nil
	})
	if !ok {
		t.Fatalf("%s: not within %s: %v", what, within, last)
	}
}

// manifest fills in a YAML template: $IMAGE is the suite's busybox image,
// and vars are further "NAME", value pairs for $NAME.
func manifest(tmpl string, vars ...string) string {
	pairs := []string{"$IMAGE", busyboxImage, "$GC_IMAGE", gcImage}
	for i := 0; i+1 < len(vars); i += 2 {
		pairs = append(pairs, "$"+vars[i], vars[i+1])
	}
	return strings.NewReplacer(pairs...).Replace(tmpl)
}

// execErr runs cmd in container ctr of pod (the pod's only one when ctr
// is "") through `kubectl exec`.
func (c *Cluster) execErr(ns, pod, ctr string, cmd ...string) (string, error) {
	args := []string{"exec", "-n", ns, pod}
	if ctr != "" {
		args = append(args, "-c", ctr)
	}
	return c.kubectlErr(append(append(args, "--"), cmd...)...)
}

// exec is execErr failing t on error.
func (c *Cluster) exec(t testing.TB, ns, pod, ctr string, cmd ...string) string {
	t.Helper()
	out, err := c.execErr(ns, pod, ctr, cmd...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// httpRequest is what httpFrom sends: busybox's wget crashes in the
// static build (Debian's busybox-static 1.35), so pods speak HTTP with nc.
const httpRequest = `printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 3 "$0" "$1"`

// httpBody takes the body of a 200 response, or says what came instead.
func httpBody(resp string, err error) (string, error) {
	if err != nil {
		return "", err
	}
	head, body, ok := strings.Cut(resp, "\r\n\r\n")
	if !ok || !strings.HasPrefix(head, "HTTP/1.") || !strings.Contains(strings.SplitN(head, "\r\n", 2)[0], " 200 ") {
		return "", fmt.Errorf("not a 200 response: %q", resp)
	}
	return body, nil
}

// httpFromPod GETs / of host:port from inside pod, the body of a 200 answer.
func (c *Cluster) httpFromPod(ns, pod, host, port string) (string, error) {
	return httpBody(c.execErr(ns, pod, "", "sh", "-c", httpRequest, host, port))
}

// httpFromNode GETs / of host:port from node's network namespace.
func (c *Cluster) httpFromNode(node, host, port string) (string, error) {
	return httpBody(c.nodeExecErr(node, "busybox", "sh", "-c", httpRequest, host, port))
}

// httpGet GETs url once from the test process (the host) and returns the
// body of a 200 answer.
func httpGet(url string) (string, error) {
	client := &http.Client{Timeout: 3 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), nil
}

// indexPage is what httpd serves from the busybox image's /www.
const indexPage = "hello from busybox\n"

// expect checks a command's or request's result against want:
// expect(want)(c.execErr(...)) is nil when it ran and printed want.
func expect(want string) func(got string, err error) error {
	return func(got string, err error) error {
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("got %q, want %q", got, want)
		}
		return nil
	}
}

// criPod and criContainer are what `crictl pods/ps -o json` list.
type criPod struct {
	ID       string `json:"id"`
	Metadata struct {
		Name      string `json:"name"`
		UID       string `json:"uid"`
		Namespace string `json:"namespace"`
		Attempt   int    `json:"attempt"`
	} `json:"metadata"`
	State string `json:"state"`
}

type criContainer struct {
	ID           string `json:"id"`
	PodSandboxID string `json:"podSandboxId"`
	Metadata     struct {
		Name    string `json:"name"`
		Attempt int    `json:"attempt"`
	} `json:"metadata"`
	State string `json:"state"`
}

// criPods lists node's pod sandboxes of Kubernetes namespace ns, ready or not.
func (c *Cluster) criPods(t testing.TB, node, ns string) []criPod {
	t.Helper()
	var l struct {
		Items []criPod `json:"items"`
	}
	out := c.crictl(t, node, "pods", "--label", "io.kubernetes.pod.namespace="+ns, "-o", "json")
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatalf("crictl pods: %v\n%s", err, out)
	}
	return l.Items
}

// criContainers lists node's containers (exited ones too) of namespace ns.
func (c *Cluster) criContainers(t testing.TB, node, ns string) []criContainer {
	t.Helper()
	var l struct {
		Containers []criContainer `json:"containers"`
	}
	out := c.crictl(t, node, "ps", "-a", "--label", "io.kubernetes.pod.namespace="+ns, "-o", "json")
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatalf("crictl ps: %v\n%s", err, out)
	}
	return l.Containers
}
