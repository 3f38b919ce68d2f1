package cri

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/criserver/criserver/cgroups"
	"github.com/criserver/criserver/podmetrics"
)

func TestParseNetDev(t *testing.T) {
	const netDev = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     840      10    0    0    0     0          0         0      840      10    0    0    0     0       0          0
  eth0:    5000      40    1    2    0     0          0         0     3000      30    3    4    0     0       0          0
 net1: 7 1 0 0 0 0 0 0 9 2 0 0 0 0 0 0
 bad: 1 2 3
`
	got, err := parseNetDev(strings.NewReader(netDev))
	if err != nil {
		t.Fatal(err)
	}
	want := []podmetrics.NetInterface{
		{Name: "eth0", RxBytes: 5000, RxPackets: 40, RxErrors: 1, RxDropped: 2, TxBytes: 3000, TxPackets: 30, TxErrors: 3, TxDropped: 4},
		{Name: "net1", RxBytes: 7, RxPackets: 1, TxBytes: 9, TxPackets: 2},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseNetDev = %+v\nwant %+v", got, want)
	}
}

func TestBlockDeviceNames(t *testing.T) {
	sys := t.TempDir()
	for dev, uevent := range map[string]string{
		"8:0":   "MAJOR=8\nMINOR=0\nDEVNAME=sda\nDEVTYPE=disk\n",
		"253:1": "MAJOR=253\nMINOR=1\n", // no name
	} {
		if err := os.MkdirAll(filepath.Join(sys, dev), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sys, dev, "uevent"), []byte(uevent), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b := newBlockDevices(sys)
	b.learn([]cgroups.DeviceIO{{Major: 8, Minor: 0}})
	// Once learnt, a name stays even if sysfs changes.
	if err := os.RemoveAll(filepath.Join(sys, "8:0")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		major, minor uint64
		want         string
	}{
		{8, 0, "/dev/sda"},
		{253, 1, ""},
		{7, 7, ""},
	}
	for _, tc := range tests {
		if got := b.name(tc.major, tc.minor); got != tc.want {
			t.Errorf("name(%d:%d) = %q, want %q", tc.major, tc.minor, got, tc.want)
		}
	}
}

func TestLayerFSUsage(t *testing.T) {
	l := &layerFS{dir: t.TempDir()}
	u := l.usage(4096)
	if u == nil || u.UsageBytes != 4096 || u.LimitBytes == 0 || u.Inodes == 0 || u.Timestamp.IsZero() {
		t.Errorf("usage = %+v, want the layer's bytes on a sized filesystem", u)
	}
	gone := &layerFS{dir: filepath.Join(t.TempDir(), "missing")}
	if u := gone.usage(1); u != nil {
		t.Errorf("usage of a missing dir = %+v, want none", u)
	}
}
