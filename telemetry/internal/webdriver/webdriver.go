// Package webdriver drives Debian's headless Chromium through chromedriver
// and the W3C WebDriver HTTP API, for portal tests. Test-only: never
// imported by a binary. Require installs chromium and chromium-driver
// with apt-get when missing, and skips the test with the reason when that
// fails.
package webdriver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// Packages are the Debian packages the browser tests need.
var Packages = []string{"chromium", "chromium-driver"}

// Require makes sure chromium and chromedriver are installed, or skips t.
func Require(t testing.TB) {
	t.Helper()
	if haveAll() {
		return
	}
	if os.Geteuid() != 0 {
		t.Skipf("headless browser test needs %v (apt-get install %v as root)", Packages, Packages)
	}
	cmd := exec.Command("apt-get", append([]string{"install", "-y", "-qq"}, Packages...)...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := cmd.CombinedOutput(); err != nil || !haveAll() {
		t.Skipf("headless browser test skipped: apt-get install %v failed (%v); install them and run again:\n%s", Packages, err, out)
	}
}

func haveAll() bool {
	_, e1 := exec.LookPath("chromium")
	_, e2 := exec.LookPath("chromedriver")
	return e1 == nil && e2 == nil
}

// Session is one browser session.
type Session struct {
	t    testing.TB
	base string // chromedriver URL + /session/<id>
}

// Start runs chromedriver on a loopback port and opens a headless
// Chromium session; both end with the test.
func Start(t testing.TB) *Session {
	t.Helper()
	Require(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command("chromedriver", "--port="+strconv.Itoa(port), "--allowed-ips=127.0.0.1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	drv := "http://127.0.0.1:" + strconv.Itoa(port)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(drv + "/status"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("chromedriver did not answer in 20 s")
		}
	}
	s := &Session{t: t, base: drv}
	var created struct {
		SessionID string `json:"sessionId"`
	}
	s.call("POST", "/session", map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName": "chrome",
		"goog:chromeOptions": map[string]any{"args": []string{"--headless=new", "--no-sandbox", "--disable-gpu",
			"--disable-dev-shm-usage", "--user-data-dir=" + t.TempDir(), "--no-proxy-server"}},
	}}}, &created)
	s.base = drv + "/session/" + created.SessionID
	t.Cleanup(func() { s.callErr("DELETE", "", nil, nil) })
	return s
}

func (s *Session) callErr(method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.base+path, rd)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var env struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return fmt.Errorf("webdriver %s %s: %s: %s", method, path, resp.Status, b)
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("webdriver %s %s: %s: %s", method, path, resp.Status, env.Value)
	}
	if out != nil {
		return json.Unmarshal(env.Value, out)
	}
	return nil
}

func (s *Session) call(method, path string, body any, out any) {
	s.t.Helper()
	if err := s.callErr(method, path, body, out); err != nil {
		s.t.Fatal(err)
	}
}

// Go opens url.
func (s *Session) Go(url string) {
	s.t.Helper()
	s.call("POST", "/url", map[string]string{"url": url}, nil)
}

// URL returns the current address.
func (s *Session) URL() string {
	s.t.Helper()
	var u string
	s.call("GET", "/url", nil, &u)
	return u
}

// Source returns the current page's HTML as the browser has it.
func (s *Session) Source() string {
	s.t.Helper()
	var v string
	s.call("GET", "/source", nil, &v)
	return v
}

const elementKey = "element-6066-11e4-a52e-4f735466cecf"

// Find returns the element id of the first match of css; it fails the
// test when there is none.
func (s *Session) Find(css string) string {
	s.t.Helper()
	var v map[string]string
	s.call("POST", "/element", map[string]string{"using": "css selector", "value": css}, &v)
	return v[elementKey]
}

// FindAll returns the element ids matching css.
func (s *Session) FindAll(css string) []string {
	s.t.Helper()
	var v []map[string]string
	s.call("POST", "/elements", map[string]string{"using": "css selector", "value": css}, &v)
	out := make([]string, len(v))
	for i, e := range v {
		out[i] = e[elementKey]
	}
	return out
}

// Type sends text to the element.
func (s *Session) Type(el, text string) {
	s.t.Helper()
	s.call("POST", "/element/"+el+"/value", map[string]string{"text": text}, nil)
}

// Clear empties an input.
func (s *Session) Clear(el string) {
	s.t.Helper()
	s.call("POST", "/element/"+el+"/clear", struct{}{}, nil)
}

// Click clicks the element.
func (s *Session) Click(el string) {
	s.t.Helper()
	s.call("POST", "/element/"+el+"/click", struct{}{}, nil)
}

// Text returns the element's rendered text.
func (s *Session) Text(el string) string {
	s.t.Helper()
	var v string
	s.call("GET", "/element/"+el+"/text", nil, &v)
	return v
}

// Attr returns an attribute of the element.
func (s *Session) Attr(el, name string) string {
	s.t.Helper()
	var v *string
	s.call("GET", "/element/"+el+"/attribute/"+name, nil, &v)
	if v == nil {
		return ""
	}
	return *v
}

// WaitURL polls until the address satisfies ok (a click's navigation is
// asynchronous) and returns it; it fails the test after 15 s, showing the
// page.
func (s *Session) WaitURL(what string, ok func(string) bool) string {
	s.t.Helper()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		u := s.URL()
		if ok(u) {
			// The page at the new address may still be loading.
			var state string
			if s.callErr("POST", "/execute/sync", map[string]any{"script": "return document.readyState", "args": []any{}}, &state) != nil || state == "complete" {
				return u
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("browser at %s, waited for %s; page:\n%s", u, what, s.Source())
		}
	}
}
