package podmetrics

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// kubeletCollector turns CRI descriptors and metrics into Prometheus
// metrics the way the kubelet's CRI metrics collector does (variable labels
// from label_keys, const metrics from label_values, counter or gauge,
// the timestamp when set), so that a registry can judge them.
type kubeletCollector struct {
	descs   map[string]*prometheus.Desc
	metrics []*runtime.Metric
	t       *testing.T
}

func (c *kubeletCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *kubeletCollector) Collect(ch chan<- prometheus.Metric) {
	for _, m := range c.metrics {
		typ := prometheus.GaugeValue
		if m.MetricType == runtime.MetricType_COUNTER {
			typ = prometheus.CounterValue
		}
		pm, err := prometheus.NewConstMetric(c.descs[m.Name], typ, float64(m.GetValue().GetValue()), m.LabelValues...)
		if err != nil {
			c.t.Errorf("metric %s: %v", m.Name, err)
			continue
		}
		if m.Timestamp != 0 {
			pm = prometheus.NewMetricWithTimestamp(time.Unix(0, m.Timestamp), pm)
		}
		ch <- pm
	}
}

// TestKubeletCanExposeMetrics: a pod with two containers, every family,
// gathered by a Prometheus registry: no invalid name, label, label count or
// duplicate series.
func TestKubeletCanExposeMetrics(t *testing.T) {
	now := time.Now()
	c := &kubeletCollector{descs: map[string]*prometheus.Desc{}, t: t}
	for _, d := range All.Descriptors() {
		c.descs[d.Name] = prometheus.NewDesc(d.Name, d.Help, d.LabelKeys, nil)
	}
	pod := fullInput(now)
	pod.Labels = Labels{ID: "/kubepods/podu", Namespace: "ns", Pod: "p"}
	pod.Fs = nil
	c1, c2 := fullInput(now), fullInput(now)
	c1.Network, c2.Network = nil, nil
	c2.Labels.Container, c2.Labels.ID, c2.Labels.Name = "sidecar", "/kubepods/podu/c2", "c2"
	for _, in := range []*Input{pod, c1, c2} {
		c.metrics = append(c.metrics, All.Metrics(in)...)
	}
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	if len(families) < 50 {
		t.Errorf("%d metric families gathered, want every one served", len(families))
	}
}
