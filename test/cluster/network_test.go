package cluster

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// serviceWithin bounds the wait for kube-proxy's rules and CoreDNS's
// records of a new Service.
const serviceWithin = 60 * time.Second

const servicesManifest = `
apiVersion: v1
kind: Pod
metadata:
  name: server
  labels: {app: web}
spec:
  terminationGracePeriodSeconds: 1
  nodeSelector: {kubernetes.io/hostname: $SERVER_NODE}
  containers:
  - name: httpd
    image: $IMAGE
    imagePullPolicy: Never
    command: [httpd, -f, -p, "8080", -h, /www]
    ports: [{containerPort: 8080}]
    readinessProbe:
      tcpSocket: {port: 8080}
      periodSeconds: 1
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  terminationGracePeriodSeconds: 1
  nodeSelector: {kubernetes.io/hostname: $CLIENT_NODE}
  containers:
  - name: main
    image: $IMAGE
    imagePullPolicy: Never
    command: [sleep, "3600"]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web-nodeport}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
`

type service struct {
	Spec struct {
		ClusterIP string `json:"clusterIP"`
		Ports     []struct {
			NodePort int `json:"nodePort"`
		} `json:"ports"`
	} `json:"spec"`
}

// A ClusterIP and a NodePort Service in front of a pod on one node answer
// from a pod on the other node (by IP and by DNS name), from the nodes and
// from the host (the ClusterIP, and the NodePort on each node's IP).
func TestServices(t *testing.T) {
	t.Parallel()
	c := cluster(t)
	ns := c.namespace(t)
	serverNode, clientNode := c.Nodes[0], c.Nodes[1]
	c.apply(t, ns, manifest(servicesManifest, "SERVER_NODE", serverNode, "CLIENT_NODE", clientNode))
	c.wait(t, ns, "condition=Ready", "pod/server", 2*time.Minute)
	c.wait(t, ns, "condition=Ready", "pod/client", 2*time.Minute)

	var web, nodePort service
	c.getJSON(t, &web, "service", "-n", ns, "web")
	c.getJSON(t, &nodePort, "service", "-n", ns, "web-nodeport")
	clusterIP, clusterURL := web.Spec.ClusterIP, "http://"+web.Spec.ClusterIP+"/"
	port := strconv.Itoa(nodePort.Spec.Ports[0].NodePort)
	fromClient := func(host, port string) func() error {
		return func() error { return expect(indexPage)(c.httpFromPod(ns, "client", host, port)) }
	}

	t.Run("ClusterIPFromPodOnOtherNode", func(t *testing.T) {
		retry(t, serviceWithin, "GET "+clusterURL+" from the client pod", fromClient(clusterIP, "80"))
	})
	t.Run("DNSInPod", func(t *testing.T) {
		for name, ip := range map[string]string{
			"web." + ns + ".svc.cluster.local":     web.Spec.ClusterIP,
			"kubernetes.default.svc.cluster.local": c.serviceIP(t, "default", "kubernetes"),
		} {
			retry(t, serviceWithin, "resolve "+name+" in the client pod", func() error {
				out, err := c.execErr(ns, "client", "", "nslookup", "-type=a", name)
				if err != nil {
					return err
				}
				if !strings.Contains(out, "Address: "+ip) {
					return fmt.Errorf("%s does not resolve to %s:\n%s", name, ip, out)
				}
				return nil
			})
		}
	})
	t.Run("NodePortFromPodOnOtherNode", func(t *testing.T) {
		ip := c.nodeIP(t, serverNode)
		retry(t, serviceWithin, "GET "+ip+":"+port+" from the client pod", fromClient(ip, port))
	})
	t.Run("ClusterIPFromNodes", func(t *testing.T) {
		for _, n := range c.Nodes {
			retry(t, serviceWithin, "GET "+clusterURL+" in node "+n, func() error {
				return expect(indexPage)(c.httpFromNode(n, clusterIP, "80"))
			})
		}
	})
	t.Run("ClusterIPFromHost", func(t *testing.T) {
		// The cluster routes its service CIDR from the host to a node.
		retry(t, serviceWithin, "GET "+clusterURL+" from the host", func() error { return expect(indexPage)(httpGet(clusterURL)) })
	})
	t.Run("NodePortFromHost", func(t *testing.T) {
		for _, n := range c.Nodes {
			url := "http://" + net.JoinHostPort(c.nodeIP(t, n), port) + "/"
			retry(t, serviceWithin, "GET "+url+" from the host", func() error { return expect(indexPage)(httpGet(url)) })
		}
	})
}

// serviceIP is the ClusterIP of Service name in ns.
func (c *Cluster) serviceIP(t testing.TB, ns, name string) string {
	t.Helper()
	var s service
	c.getJSON(t, &s, "service", "-n", ns, name)
	return s.Spec.ClusterIP
}

const hostPortPod = `
apiVersion: v1
kind: Pod
metadata: {name: hostport}
spec:
  terminationGracePeriodSeconds: 1
  nodeSelector: {kubernetes.io/hostname: $NODE}
  containers:
  - name: httpd
    image: $IMAGE
    imagePullPolicy: Never
    command: [httpd, -f, -p, "8080", -h, /www]
    ports: [{containerPort: 8080, hostPort: 18080}]
`

// A hostPort maps the node's port to the pod: the host reaches it on the
// node's IP.
func TestHostPort(t *testing.T) {
	t.Parallel()
	c := cluster(t)
	ns := c.namespace(t)
	n := c.Nodes[1]
	c.apply(t, ns, manifest(hostPortPod, "NODE", n))
	c.wait(t, ns, "condition=Ready", "pod/hostport", 2*time.Minute)
	url := "http://" + net.JoinHostPort(c.nodeIP(t, n), "18080") + "/"
	retry(t, 30*time.Second, "GET "+url+" from the host", func() error { return expect(indexPage)(httpGet(url)) })
}

const hostNetworkPod = `
apiVersion: v1
kind: Pod
metadata: {name: hostnet}
spec:
  terminationGracePeriodSeconds: 1
  hostNetwork: true
  nodeSelector: {kubernetes.io/hostname: $NODE}
  containers:
  - name: httpd
    image: $IMAGE
    imagePullPolicy: Never
    command: [httpd, -f, -p, "18081", -h, /www]
`

// A hostNetwork pod is in its node's network namespace: it has the node's
// IP, and what it serves is on the node's address.
func TestHostNetwork(t *testing.T) {
	t.Parallel()
	c := cluster(t)
	ns := c.namespace(t)
	n := c.Nodes[1]
	c.apply(t, ns, manifest(hostNetworkPod, "NODE", n))
	c.wait(t, ns, "condition=Ready", "pod/hostnet", 2*time.Minute)
	nodeIP := c.nodeIP(t, n)
	if ip := c.getPod(t, ns, "hostnet").Status.PodIP; ip != nodeIP {
		t.Errorf("pod IP %s, want the node's %s", ip, nodeIP)
	}
	if addrs := c.exec(t, ns, "hostnet", "", "ip", "-o", "addr"); !strings.Contains(addrs, " "+nodeIP+"/") {
		t.Errorf("the pod has not the node's address %s:\n%s", nodeIP, addrs)
	}
	url := "http://" + net.JoinHostPort(nodeIP, "18081") + "/"
	retry(t, 30*time.Second, "GET "+url+" from the host", func() error { return expect(indexPage)(httpGet(url)) })
}
