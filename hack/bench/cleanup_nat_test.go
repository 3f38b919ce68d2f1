package main

import (
	"slices"
	"testing"
)

func TestMasqLeftovers(t *testing.T) {
	rules := `-P POSTROUTING ACCEPT
-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
-A POSTROUTING -s 10.202.0.2/32 -m comment --comment "name: \"criserver-bench-criserver\" id: \"8a31\"" -j CNI-e818bba1217768b06f605ec2
-A POSTROUTING -s 10.203.0.2/32 -m comment --comment "name: \"criserver-bench-containerd\" id: \"35fb\"" -j CNI-44651d25cba8dc60cfe6e145
-A POSTROUTING -s 10.202.0.3/32 -m comment --comment "name: \"criserver-bench-criserver\" id: \"9abc\"" -j CNI-a963393b4dde9c2516f88c6b
-A POSTROUTING -s 10.202.0.9/32 -m comment --comment "name: \"criserver-bench-criserver-2\" id: \"77\"" -j CNI-0000000000000000000000aa
-A POSTROUTING -s 10.202.0.4/32 -m comment --comment "name: \"criserver-bench-criserver\" id: \"1\"" -j MASQUERADE
`
	tests := []struct {
		network string
		want    []masqLeftover
	}{
		{"criserver-bench-criserver", []masqLeftover{{4, "CNI-a963393b4dde9c2516f88c6b"}, {2, "CNI-e818bba1217768b06f605ec2"}}},
		{"criserver-bench-containerd", []masqLeftover{{3, "CNI-44651d25cba8dc60cfe6e145"}}},
		{"other", nil},
	}
	for _, tt := range tests {
		if got := masqLeftovers(rules, tt.network); !slices.Equal(got, tt.want) {
			t.Errorf("masqLeftovers(%s) = %v, want %v", tt.network, got, tt.want)
		}
	}
}
