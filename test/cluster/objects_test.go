package cluster

import (
	"fmt"
	"strings"
	"testing"
)

// The parts of Kubernetes objects the suite reads from `kubectl get -o
// json` (the daemon's module does not depend on k8s.io/api).

type objectMeta struct {
	Name      string            `json:"name"`
	Namespace string            `json:"namespace"`
	UID       string            `json:"uid"`
	Labels    map[string]string `json:"labels"`
}

type condition struct {
	Type               string `json:"type"`
	Status             string `json:"status"`
	LastTransitionTime string `json:"lastTransitionTime"`
	Reason             string `json:"reason"`
}

type pod struct {
	Metadata objectMeta `json:"metadata"`
	Spec     struct {
		NodeName string `json:"nodeName"`
	} `json:"spec"`
	Status struct {
		Phase                 string            `json:"phase"`
		PodIP                 string            `json:"podIP"`
		HostIP                string            `json:"hostIP"`
		Conditions            []condition       `json:"conditions"`
		ContainerStatuses     []containerStatus `json:"containerStatuses"`
		InitContainerStatuses []containerStatus `json:"initContainerStatuses"`
	} `json:"status"`
}

type containerState struct {
	Running *struct {
		StartedAt string `json:"startedAt"`
	} `json:"running"`
	Terminated *struct {
		ExitCode int    `json:"exitCode"`
		Reason   string `json:"reason"`
	} `json:"terminated"`
	Waiting *struct {
		Reason  string `json:"reason"`
		Message string `json:"message"`
	} `json:"waiting"`
}

type containerStatus struct {
	Name         string         `json:"name"`
	ContainerID  string         `json:"containerID"` // criserver://<id>
	RestartCount int            `json:"restartCount"`
	Ready        bool           `json:"ready"`
	State        containerState `json:"state"`
	LastState    containerState `json:"lastState"`
}

// ID is the container's CRI ID, without the runtime prefix.
func (s containerStatus) ID() string {
	_, id, _ := strings.Cut(s.ContainerID, "://")
	return id
}

type podList struct {
	Items []pod `json:"items"`
}

type node struct {
	Metadata objectMeta `json:"metadata"`
	Status   struct {
		Conditions []condition `json:"conditions"`
		Addresses  []struct {
			Type    string `json:"type"`
			Address string `json:"address"`
		} `json:"addresses"`
	} `json:"status"`
}

// condition returns the condition of type typ, or a zero one.
func conditionOf(conds []condition, typ string) condition {
	for _, c := range conds {
		if c.Type == typ {
			return c
		}
	}
	return condition{}
}

// getPod reads pod name in ns.
func (c *Cluster) getPod(t testing.TB, ns, name string) pod {
	t.Helper()
	var p pod
	c.getJSON(t, &p, "pod", "-n", ns, name)
	return p
}

// pods lists the pods of ns matching selector (a label selector, or "").
func (c *Cluster) pods(t testing.TB, ns, selector string) []pod {
	t.Helper()
	args := []string{"pods", "-n", ns}
	if selector != "" {
		args = append(args, "-l", selector)
	}
	var l podList
	c.getJSON(t, &l, args...)
	return l.Items
}

// getNode reads node name.
func (c *Cluster) getNode(t testing.TB, name string) node {
	t.Helper()
	var n node
	c.getJSON(t, &n, "node", name)
	return n
}

// nodeIP is node name's InternalIP.
func (c *Cluster) nodeIP(t testing.TB, name string) string {
	t.Helper()
	n := c.getNode(t, name)
	for _, a := range n.Status.Addresses {
		if a.Type == "InternalIP" {
			return a.Address
		}
	}
	t.Fatalf("node %s has no InternalIP", name)
	return ""
}

// status returns the status of container name in p.
func (p pod) status(t testing.TB, name string) containerStatus {
	t.Helper()
	for _, s := range append(p.Status.ContainerStatuses, p.Status.InitContainerStatuses...) {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("pod %s has no status for container %s", p.Metadata.Name, name)
	return containerStatus{}
}

func (p pod) String() string {
	return fmt.Sprintf("%s/%s on %s", p.Metadata.Namespace, p.Metadata.Name, p.Spec.NodeName)
}
