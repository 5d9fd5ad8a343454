package explore

import (
	"reflect"
	"testing"
)

func TestGenerateIsDeterministicAndParsesBack(t *testing.T) {
	for seed := uint64(1); seed < 50; seed++ {
		a, b := Generate(seed, 20), Generate(seed, 20)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("seed %d gave two histories", seed)
		}
		back, err := Parse(a.Format())
		if err != nil || !reflect.DeepEqual(back, a) {
			t.Fatalf("seed %d: %v\n%s\nparsed back as %+v", seed, err, a.Format(), back)
		}
	}
	if reflect.DeepEqual(Generate(1, 20), Generate(2, 20)) {
		t.Fatal("seeds 1 and 2 gave the same history")
	}
}

func TestGenerateDrawsEveryKind(t *testing.T) {
	seen := map[Kind]int{}
	for seed := uint64(1); seed < 200; seed++ {
		for _, s := range Generate(seed, 20).Steps {
			seen[KindOf(s.Op)]++
		}
	}
	for _, k := range []Kind{User, Intermediate, Stale, Unobserved, Fault, Time} {
		if seen[k] == 0 {
			t.Errorf("no step of kind %s in 200 histories", k)
		}
	}
}

func TestParseRefusesUnknownSteps(t *testing.T) {
	if _, err := Parse("seed 1\napply c0 e0 Delete\nfly c0\n"); err == nil {
		t.Fatal("an unknown step was accepted")
	}
	h, err := Parse("# a comment\n\nseed 0\ndelete c1\n")
	if err != nil || len(h.Steps) != 1 || h.Steps[0].String() != "delete c1" {
		t.Fatalf("%+v %v", h, err)
	}
}
