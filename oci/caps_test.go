package oci

import (
	"reflect"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestCapabilitySet(t *testing.T) {
	without := func(drop ...string) []string {
		var out []string
		for _, c := range allCapabilities {
			if !contains(drop, c) {
				out = append(out, c)
			}
		}
		return out
	}
	ordered := func(caps ...string) []string {
		var out []string
		for _, c := range allCapabilities {
			if contains(caps, c) {
				out = append(out, c)
			}
		}
		return out
	}
	def := ordered(defaultCapabilities...)
	tests := []struct {
		name        string
		c           *runtime.Capability
		privileged  bool
		want        []string
		wantAmbient []string
		wantErr     string
	}{
		{name: "default", want: def},
		{name: "add short and long names", c: &runtime.Capability{AddCapabilities: []string{"net_admin", "CAP_SYS_TIME"}},
			want: ordered(append(defaultCapabilities, "CAP_NET_ADMIN", "CAP_SYS_TIME")...)},
		{name: "drop", c: &runtime.Capability{DropCapabilities: []string{"NET_RAW", "CAP_KILL"}},
			want: removeAll(def, "CAP_NET_RAW", "CAP_KILL")},
		{name: "add ALL", c: &runtime.Capability{AddCapabilities: []string{"ALL"}}, want: allCapabilities},
		{name: "add ALL drop one", c: &runtime.Capability{AddCapabilities: []string{"all"}, DropCapabilities: []string{"SYS_ADMIN"}},
			want: without("CAP_SYS_ADMIN")},
		{name: "drop ALL", c: &runtime.Capability{DropCapabilities: []string{"ALL"}}, want: nil},
		{name: "drop ALL add one", c: &runtime.Capability{DropCapabilities: []string{"ALL"}, AddCapabilities: []string{"NET_BIND_SERVICE"}},
			want: []string{"CAP_NET_BIND_SERVICE"}},
		{name: "ambient", c: &runtime.Capability{DropCapabilities: []string{"ALL"}, AddAmbientCapabilities: []string{"NET_RAW"}},
			want: []string{"CAP_NET_RAW"}, wantAmbient: []string{"CAP_NET_RAW"}},
		{name: "unknown add", c: &runtime.Capability{AddCapabilities: []string{"CAP_FLY"}}, wantErr: "CAP_FLY"},
		{name: "unknown drop", c: &runtime.Capability{DropCapabilities: []string{"WALK"}}, wantErr: "WALK"},
		{name: "unknown ambient", c: &runtime.Capability{AddAmbientCapabilities: []string{"SWIM"}}, wantErr: "SWIM"},
		{name: "privileged", privileged: true, want: allCapabilities},
		{name: "privileged ignores drops", privileged: true, c: &runtime.Capability{DropCapabilities: []string{"ALL", "SYS_ADMIN"}},
			want: allCapabilities},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, amb, err := capabilitySet(tc.c, tc.privileged, nil)
			if tc.wantErr != "" {
				mustInvalid(t, err, tc.wantErr)
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) || !reflect.DeepEqual(amb, tc.wantAmbient) {
				t.Fatalf("got %v / %v, %v; want %v / %v", got, amb, err, tc.want, tc.wantAmbient)
			}
		})
	}
}

func removeAll(list []string, drop ...string) []string {
	var out []string
	for _, v := range list {
		if !contains(drop, v) {
			out = append(out, v)
		}
	}
	return out
}

func TestGenerateSpecCapabilities(t *testing.T) {
	in := testInput(t)
	in.Config.Linux.SecurityContext.Capabilities = &runtime.Capability{DropCapabilities: []string{"ALL"}, AddCapabilities: []string{"CHOWN"}}
	c := mustGenerate(t, in).Spec.Process.Capabilities
	want := []string{"CAP_CHOWN"}
	if !reflect.DeepEqual(c.Bounding, want) || !reflect.DeepEqual(c.Effective, want) || !reflect.DeepEqual(c.Permitted, want) || c.Inheritable != nil {
		t.Fatalf("capabilities = %+v", c)
	}
	in.Config.Linux.SecurityContext.Capabilities = &runtime.Capability{AddCapabilities: []string{"BOGUS"}}
	_, err := GenerateSpec(in)
	mustInvalid(t, err, "BOGUS")
}

func TestCapabilitiesLimitedToHost(t *testing.T) {
	host, err := parseCapMask("000001fffeffffff") // this host: no CAP_SYS_RESOURCE
	if err != nil || contains(host, "CAP_SYS_RESOURCE") || len(host) != len(allCapabilities)-1 {
		t.Fatalf("parseCapMask = %v, %v", host, err)
	}
	got, _, err := capabilitySet(nil, true, host)
	if err != nil || !reflect.DeepEqual(got, host) {
		t.Fatalf("privileged = %v, %v", got, err)
	}
	got, _, err = capabilitySet(&runtime.Capability{AddCapabilities: []string{"ALL"}}, false, host)
	if err != nil || !reflect.DeepEqual(got, host) {
		t.Fatalf("add ALL = %v, %v", got, err)
	}
	_, _, err = capabilitySet(&runtime.Capability{AddCapabilities: []string{"SYS_RESOURCE"}}, false, host)
	mustInvalid(t, err, "not available")
}
