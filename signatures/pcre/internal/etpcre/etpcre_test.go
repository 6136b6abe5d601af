package etpcre

import "testing"

func TestParseRule(t *testing.T) {
	line := `alert http any any -> any any (msg:"x; y"; content:"GET|20|/a"; pcre:"/a\"b\;c/Ri"; pcre:!"/^x\/y$/sm"; pcre:"/broken["; sid:42;)`
	got, bad := parseRule(line)
	if bad != 1 || len(got) != 2 {
		t.Fatalf("got %d pcres, %d bad, want 2 and 1: %+v", len(got), bad, got)
	}
	if got[0].Pattern != `a\"b\;c` || got[0].Flags != "Ri" || got[0].Sid != 42 || got[0].Negated {
		t.Errorf("first = %+v", got[0])
	}
	if got[1].Pattern != `^x\/y$` || got[1].Flags != "sm" || !got[1].Negated {
		t.Errorf("second = %+v", got[1])
	}
	if len(got[0].Contents) != 1 || got[0].Contents[0] != "GET /a" {
		t.Errorf("contents = %q", got[0].Contents)
	}
}

func TestLoadETOpen(t *testing.T) {
	p, bad, err := Load(DefaultDir)
	if err != nil {
		t.Skipf("ET Open rules not available: %v", err)
	}
	t.Logf("%d pcres, %d unparseable", len(p), bad)
	if len(p) < 7000 {
		t.Errorf("only %d pcres extracted from ET Open, want > 7000", len(p))
	}
}
