package monitor

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"
)

func noRedirect(jar http.CookieJar) *http.Client {
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func do(t *testing.T, c *http.Client, method, u string, form url.Values, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, u, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func csrfOf(t *testing.T, page string) string {
	t.Helper()
	mm := csrfRE.FindStringSubmatch(page)
	if mm == nil {
		t.Fatalf("no CSRF field in:\n%s", page)
	}
	return mm[1]
}

// TestPortalAuth: no default password; the one-time setup URL works once
// and needs its token, the CSRF token and a 10-character password; the
// session cookie is HttpOnly, SameSite=Strict (Secure behind TLS);
// pages and the API need a session; failed logins are limited; cross-site
// and token-less POSTs are refused; logout ends the session.
func TestPortalAuth(t *testing.T) {
	var logs syncBuf
	m, err := Start(Config{DataDir: t.TempDir(), NATSListen: "127.0.0.1:-1", HTTPListen: "127.0.0.1:0", Logger: testLogger(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	base := m.PortalURL()
	jar, _ := cookiejar.New(nil)
	c := noRedirect(jar)

	resp, _ := do(t, c, "GET", base, nil, nil)
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
		t.Fatalf("GET / without a session: %s %s", resp.Status, resp.Header.Get("Location"))
	}
	if resp, _ := do(t, c, "GET", base+"api/alerts", nil, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("API without a session: %s", resp.Status)
	}
	_, page := do(t, c, "GET", base+"login", nil, nil)
	if !strings.Contains(page, `id="need-setup"`) {
		t.Fatal("login page does not say the password is not set")
	}
	csrf := csrfOf(t, page)
	if resp, _ := do(t, c, "POST", base+"login", url.Values{"csrf": {csrf}, "user": {"admin"}, "password": {""}}, nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("login before setup: %s", resp.Status)
	}

	mm := setupRE.FindStringSubmatch(logs.String())
	if mm == nil {
		t.Fatalf("no setup URL logged:\n%s", logs.String())
	}
	su, _ := url.Parse(mm[1])
	token := su.Query().Get("token")
	if len(token) < 32 {
		t.Fatalf("setup token %q too short", token)
	}
	if resp, _ := do(t, c, "GET", base+"setup?token=wrong", nil, nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("setup with a wrong token: %s", resp.Status)
	}
	_, page = do(t, c, "GET", base+"setup?token="+token, nil, nil)
	csrf = csrfOf(t, page)
	good := url.Values{"csrf": {csrf}, "token": {token}, "password": {testPassword}, "confirm": {testPassword}}
	for name, v := range map[string]url.Values{
		"no csrf":    {"token": {token}, "password": {testPassword}, "confirm": {testPassword}},
		"bad token":  {"csrf": {csrf}, "token": {token + "x"}, "password": {testPassword}, "confirm": {testPassword}},
		"short":      {"csrf": {csrf}, "token": {token}, "password": {"short"}, "confirm": {"short"}},
		"mismatched": {"csrf": {csrf}, "token": {token}, "password": {testPassword}, "confirm": {testPassword + "!"}},
	} {
		if resp, _ := do(t, c, "POST", base+"setup", v, nil); resp.StatusCode < 400 {
			t.Errorf("setup %s: %s", name, resp.Status)
		}
	}
	if resp, _ := do(t, c, "POST", base+"setup", good, map[string]string{"Origin": "http://evil.example"}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site setup: %s", resp.Status)
	}
	resp, _ = do(t, c, "POST", base+"setup", good, map[string]string{"X-Forwarded-Proto": "https"})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("setup: %s", resp.Status)
	}
	var sc *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == sessionCookie {
			sc = ck
		}
	}
	if sc == nil || !sc.HttpOnly || sc.SameSite != http.SameSiteStrictMode || !sc.Secure {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict, Secure behind TLS", sc)
	}
	if resp, _ := do(t, c, "GET", base+"setup?token="+token, nil, nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("setup URL works twice: %s", resp.Status)
	}
	// The Secure cookie is not sent back over plain HTTP by the jar: log
	// in again without the proxy header.
	jar, _ = cookiejar.New(nil)
	c = noRedirect(jar)
	_, page = do(t, c, "GET", base+"login", nil, nil)
	csrf = csrfOf(t, page)
	if resp, _ := do(t, c, "POST", base+"login", url.Values{"user": {"admin"}, "password": {testPassword}}, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("login without CSRF token: %s", resp.Status)
	}
	resp, _ = do(t, c, "POST", base+"login", url.Values{"csrf": {csrf}, "user": {"admin"}, "password": {testPassword}, "next": {"//evil.example/x"}}, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("login: %s %s (an off-site next must become /)", resp.Status, resp.Header.Get("Location"))
	}
	resp, page = do(t, c, "GET", base, nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(page, `id="logout"`) {
		t.Fatalf("dashboard after login: %s", resp.Status)
	}
	if resp, _ := do(t, c, "GET", base+"api/boxes", nil, nil); resp.StatusCode != 200 {
		t.Fatalf("API with a session: %s", resp.Status)
	}
	if resp, _ := do(t, c, "POST", base+"logout", url.Values{}, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("logout without CSRF token: %s", resp.Status)
	}
	resp, _ = do(t, c, "POST", base+"logout", url.Values{"csrf": {csrfOf(t, page)}}, nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %s", resp.Status)
	}
	if resp, _ := do(t, c, "GET", base+"api/boxes", nil, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("API after logout: %s", resp.Status)
	}

	// Failed logins: 5 per address per 5 minutes (the wrong setup token
	// above was one), then even the right password is refused.
	_, page = do(t, c, "GET", base+"login", nil, nil)
	csrf = csrfOf(t, page)
	for i := 0; i < loginFailures-1; i++ {
		if resp, _ := do(t, c, "POST", base+"login", url.Values{"csrf": {csrf}, "user": {"admin"}, "password": {"guess" + time.Now().String()}}, nil); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: %s", i, resp.Status)
		}
	}
	if resp, _ := do(t, c, "POST", base+"login", url.Values{"csrf": {csrf}, "user": {"admin"}, "password": {testPassword}}, nil); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("login after %d failures: %s", loginFailures, resp.Status)
	}
	if !strings.Contains(logs.String(), "portal login refused: too many failed attempts") {
		t.Error("refused login not logged")
	}
	if strings.Contains(logs.String(), testPassword) {
		t.Error("the password reached the log")
	}
}

// TestReadToken: the bearer read token opens GET pages and the API, never
// a POST, and a wrong one nothing.
func TestReadToken(t *testing.T) {
	const tok = "0123456789abcdef0123456789abcdef-read"
	var logs syncBuf
	if _, err := Start(Config{DataDir: t.TempDir(), ReadToken: "short", Logger: testLogger(&logs)}); err == nil {
		t.Fatal("a short read token was accepted")
	}
	m, err := Start(Config{DataDir: t.TempDir(), NATSListen: "127.0.0.1:-1", HTTPListen: "127.0.0.1:0", ReadToken: tok, Logger: testLogger(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	c := noRedirect(nil)
	for _, p := range []string{"", "alerts", "api/alerts", "api/boxes"} {
		if resp, _ := do(t, c, "GET", m.PortalURL()+p, nil, map[string]string{"Authorization": "Bearer " + tok}); resp.StatusCode != 200 {
			t.Errorf("GET /%s with the token: %s", p, resp.Status)
		}
		if resp, _ := do(t, c, "GET", m.PortalURL()+p, nil, map[string]string{"Authorization": "Bearer " + tok + "x"}); resp.StatusCode == 200 {
			t.Errorf("GET /%s with a wrong token: %s", p, resp.Status)
		}
	}
	if resp, _ := do(t, c, "POST", m.PortalURL()+"logout", url.Values{"csrf": {""}}, map[string]string{"Authorization": "Bearer " + tok}); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
		t.Errorf("POST with the token: %s %s", resp.Status, resp.Header.Get("Location"))
	}
}
