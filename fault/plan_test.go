package fault

import "testing"

func TestParsePlan(t *testing.T) {
	tests := []struct {
		env     string
		point   string
		want    bool
		wantErr bool
	}{
		{"", "a", false, false},
		{"a", "a", true, false},
		{"a", "b", false, false},
		{"x, a ,y", "a", true, false},
		{"x,y", "a", false, false},
		{"random:1:100", "anything", true, false},
		{"random:1:0", "anything", false, false},
		{"random:1", "", false, true},
		{"random:x:5", "", false, true},
		{"random:1:101", "", false, true},
	}
	for _, tt := range tests {
		p, err := parsePlan(tt.env)
		if (err != nil) != tt.wantErr {
			t.Errorf("parsePlan(%q) error = %v, want error %v", tt.env, err, tt.wantErr)
			continue
		}
		if err != nil {
			continue
		}
		if got := p.hit(tt.point); got != tt.want {
			t.Errorf("parsePlan(%q).hit(%q) = %v, want %v", tt.env, tt.point, got, tt.want)
		}
	}
}

func TestRandomPlanIsReproducible(t *testing.T) {
	seq := func() []bool {
		p, err := parsePlan("random:42:30")
		if err != nil {
			t.Fatal(err)
		}
		var out []bool
		for range 200 {
			out = append(out, p.hit("p"))
		}
		return out
	}
	a, b := seq(), seq()
	hits := 0
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("random plans with one seed differ at call %d", i)
		}
		if a[i] {
			hits++
		}
	}
	if hits < 30 || hits > 90 {
		t.Errorf("random:42:30 hit %d of 200 calls, want about 60", hits)
	}
}
