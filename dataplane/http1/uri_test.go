package http1

import "testing"

func TestNormalizeURI(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"/index.html", "/index.html"},
		{"/a/./b/../c", "/a/c"},
		{"/a/b/../../../etc/passwd", "/etc/passwd"},
		{"/%2e%2e/x%20y", "/x y"},
		{"/a/b/", "/a/b/"},
		{"/a/..", "/"},
		{"/s?q=%24%7Bjndi", "/s?q=${jndi"},
		{"a/../b", "b"},
		{"http://www.lab.test/gate.php?id=%31", "/gate.php?id=1"}, // to a proxy: path and query only
		{"HTTP://user@www.lab.test:8080/a/../b", "/b"},
		{"http://www.lab.test", "/"},
		{"http://www.lab.test?q=1", "/?q=1"},
		{"/redirect?to=http://x.test/y", "/redirect?to=http://x.test/y"},
		{"bad.example:443", "bad.example:443"}, // CONNECT's authority-form stays
	} {
		if got := string(NormalizeURI(nil, []byte(c.in))); got != c.want {
			t.Errorf("NormalizeURI(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestFileName(t *testing.T) {
	for _, c := range []struct{ disp, uri, want string }{
		{"", "/files/eicar.com", "eicar.com"},
		{"", "/dl?x=1", "dl"},
		{`attachment; filename="report 1.pdf"`, "/x", "report 1.pdf"},
		{`attachment; FILENAME=a.zip; size=3`, "/x", "a.zip"},
		{"", "http://www.lab.test/files/x.exe?dl=1", "x.exe"},
		{"", "http://www.lab.test", ""},
	} {
		if got := string(FileName([]byte(c.disp), []byte(c.uri))); got != c.want {
			t.Errorf("FileName(%q,%q) = %q, want %q", c.disp, c.uri, got, c.want)
		}
	}
}

func TestAuthority(t *testing.T) {
	for _, c := range []struct{ uri, want string }{
		{"http://www.lab.test/a", "www.lab.test"},
		{"HTTP://user:pw@c2.lab.test:8080?q", "c2.lab.test:8080"},
		{"http://[2001:db8::1]:80/", "[2001:db8::1]:80"},
		{"/a?u=http://x.test/", ""},
		{"bad.example:443", ""},
	} {
		if got := string(authority([]byte(c.uri))); got != c.want {
			t.Errorf("authority(%q) = %q, want %q", c.uri, got, c.want)
		}
	}
}
