package monitor

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Portal authentication.
//
// There is no default password. While none is set, each start logs a
// one-time setup URL (with a random token) on stderr; its first use sets
// the admin password and the token dies. Passwords are kept as
// PBKDF2-HMAC-SHA-256 (600,000 iterations, 16-byte salt) in the store's
// meta bucket. Sessions live in memory (a restart logs everyone out) for
// sessionTTL; the cookie is HttpOnly, SameSite=Strict and Secure when the
// portal is served over TLS (or behind a proxy that says
// X-Forwarded-Proto: https). Every POST carries a CSRF token: the
// session's, or before login a double-submit cookie's. Logins are limited
// to 5 failures per client address per 5 minutes. Config.ReadToken, when
// set, lets a GET with "Authorization: Bearer <token>" read every page and
// the JSON API without a session (never POST).

const (
	pbkdf2Iter      = 600_000
	sessionTTL      = 12 * time.Hour
	minPassword     = 10
	loginFailures   = 5
	loginWindow     = 5 * time.Minute
	sessionCookie   = "utm_session"
	preCSRFCookie   = "utm_csrf"
	adminCredential = "admin"
)

type credential struct {
	Salt []byte `json:"salt"`
	Hash []byte `json:"hash"`
	Iter int    `json:"iter"`
}

type session struct {
	expires time.Time
	csrf    string
}

type auth struct {
	mu       sync.Mutex
	setup    string // one-time setup token while no password is set
	sessions map[string]session
	failures map[string][]time.Time // client address -> recent failed logins
}

func randomToken() string {
	b := make([]byte, 24)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *store) credential() (*credential, error) {
	var c *credential
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketMeta).Get([]byte(adminCredential))
		if v == nil {
			return nil
		}
		c = new(credential)
		return json.Unmarshal(v, c)
	})
	return c, err
}

func (s *store) setCredential(password string) error {
	salt := make([]byte, 16)
	rand.Read(salt)
	h, err := pbkdf2.Key(sha256.New, password, salt, pbkdf2Iter, 32)
	if err != nil {
		return err
	}
	b, _ := json.Marshal(credential{Salt: salt, Hash: h, Iter: pbkdf2Iter})
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put([]byte(adminCredential), b) })
}

func (c *credential) check(password string) bool {
	h, err := pbkdf2.Key(sha256.New, password, c.Salt, c.Iter, len(c.Hash))
	return err == nil && subtle.ConstantTimeCompare(h, c.Hash) == 1
}

// initAuth prepares the setup token when no password is set yet.
func (m *Monitor) initAuth() error {
	m.auth = &auth{sessions: map[string]session{}, failures: map[string][]time.Time{}}
	c, err := m.st.credential()
	if err != nil {
		return err
	}
	if c == nil {
		m.auth.setup = randomToken()
	}
	return nil
}

// logSetup tells the operator how to set the first password.
func (m *Monitor) logSetup() {
	m.auth.mu.Lock()
	tok := m.auth.setup
	m.auth.mu.Unlock()
	if tok != "" {
		m.log.Warn("portal has no admin password yet: open the one-time setup URL to set it (it works once, and only until this monitor stops)",
			"setup_url", m.publicURL()+"setup?token="+tok)
	}
}

func secureRequest(r *http.Request) bool {
	return r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https"
}

func (m *Monitor) newSession(w http.ResponseWriter, r *http.Request) {
	tok := randomToken()
	m.auth.mu.Lock()
	now := m.now()
	for k, s := range m.auth.sessions {
		if now.After(s.expires) {
			delete(m.auth.sessions, k)
		}
	}
	m.auth.sessions[tok] = session{expires: now.Add(sessionTTL), csrf: randomToken()}
	m.auth.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: tok, Path: "/", HttpOnly: true, Secure: secureRequest(r),
		SameSite: http.SameSiteStrictMode, MaxAge: int(sessionTTL / time.Second)})
}

// sessionOf returns the request's valid session and its token.
func (m *Monitor) sessionOf(r *http.Request) (session, string, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return session{}, "", false
	}
	m.auth.mu.Lock()
	defer m.auth.mu.Unlock()
	s, ok := m.auth.sessions[c.Value]
	if !ok || m.now().After(s.expires) {
		return session{}, "", false
	}
	return s, c.Value, true
}

// preCSRF returns the double-submit token for forms shown before login,
// setting its cookie when the browser has none.
func preCSRF(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(preCSRFCookie); err == nil && len(c.Value) == 48 {
		return c.Value
	}
	tok := randomToken()
	http.SetCookie(w, &http.Cookie{Name: preCSRFCookie, Value: tok, Path: "/", HttpOnly: true, Secure: secureRequest(r),
		SameSite: http.SameSiteStrictMode})
	return tok
}

var errCSRF = errors.New("the form is stale or was not sent by this portal (CSRF check failed): reload the page and try again")

// checkPost verifies a POST's origin and CSRF token against want.
func checkPost(r *http.Request, want string) error {
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return errCSRF
		}
	}
	got := r.PostFormValue("csrf")
	if want == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return errCSRF
	}
	return nil
}

func checkPreCSRF(r *http.Request) error {
	c, err := r.Cookie(preCSRFCookie)
	if err != nil {
		return errCSRF
	}
	return checkPost(r, c.Value)
}

func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// limited reports whether addr has used up its failed logins.
func (m *Monitor) limited(addr string) bool {
	m.auth.mu.Lock()
	defer m.auth.mu.Unlock()
	now := m.now()
	keep := m.auth.failures[addr][:0]
	for _, t := range m.auth.failures[addr] {
		if now.Sub(t) < loginWindow {
			keep = append(keep, t)
		}
	}
	m.auth.failures[addr] = keep
	return len(keep) >= loginFailures
}

func (m *Monitor) failed(addr string) {
	m.auth.mu.Lock()
	defer m.auth.mu.Unlock()
	m.auth.failures[addr] = append(m.auth.failures[addr], m.now())
}

// requireLogin wraps a handler of the portal: without a session, pages
// redirect to the login form and the JSON API answers 401.
func (m *Monitor) requireLogin(api bool, h func(http.ResponseWriter, *http.Request, session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, _, ok := m.sessionOf(r)
		if !ok && m.readToken(r) {
			ok = true // read-only: a session without a CSRF token can POST nothing
		}
		if !ok {
			if api {
				http.Error(w, "log in to the portal first (POST /login) and send its session cookie, or send the --read-token-file token as Authorization: Bearer", http.StatusUnauthorized)
				return
			}
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		h(w, r, s)
	}
}

// readToken reports whether r is a GET carrying Config.ReadToken as a
// bearer token (scripts, the lab, SOC tooling).
func (m *Monitor) readToken(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && m.cfg.ReadToken != "" && (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
		subtle.ConstantTimeCompare([]byte(tok), []byte(m.cfg.ReadToken)) == 1
}

func (m *Monitor) handleLoginForm(w http.ResponseWriter, r *http.Request) {
	m.auth.mu.Lock()
	needSetup := m.auth.setup != ""
	m.auth.mu.Unlock()
	m.render(w, "login", pageData{Title: "Log in", CSRF: preCSRF(w, r), NeedSetup: needSetup, Next: safeNext(r.URL.Query().Get("next"))})
}

// safeNext keeps a post-login redirect on this portal.
func safeNext(next string) string {
	if u, err := url.Parse(next); err != nil || next == "" || u.IsAbs() || u.Host != "" || len(next) < 1 || next[0] != '/' || (len(next) > 1 && next[1] == '/') {
		return "/"
	}
	return next
}

func (m *Monitor) handleLogin(w http.ResponseWriter, r *http.Request) {
	if err := checkPreCSRF(r); err != nil {
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	addr := clientAddr(r)
	if m.limited(addr) {
		m.log.Warn("portal login refused: too many failed attempts", "client", addr)
		http.Error(w, "too many failed logins from your address; wait 5 minutes", http.StatusTooManyRequests)
		return
	}
	c, err := m.st.credential()
	if err != nil || c == nil {
		http.Error(w, "no admin password is set yet: use the one-time setup URL the monitor printed on its stderr", http.StatusForbidden)
		return
	}
	if r.PostFormValue("user") != adminCredential || !c.check(r.PostFormValue("password")) {
		m.failed(addr)
		m.log.Warn("portal login failed", "client", addr)
		w.WriteHeader(http.StatusUnauthorized)
		m.render(w, "login", pageData{Title: "Log in", CSRF: preCSRF(w, r), Error: "Wrong user or password.", Next: safeNext(r.PostFormValue("next"))})
		return
	}
	m.newSession(w, r)
	m.log.Info("portal login", "client", addr)
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
}

func (m *Monitor) handleLogout(w http.ResponseWriter, r *http.Request) {
	s, tok, ok := m.sessionOf(r)
	if !ok {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	if err := checkPost(r, s.csrf); err != nil {
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	m.auth.mu.Lock()
	delete(m.auth.sessions, tok)
	m.auth.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: secureRequest(r), SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func (m *Monitor) setupToken(r *http.Request) bool {
	m.auth.mu.Lock()
	defer m.auth.mu.Unlock()
	got := r.FormValue("token")
	return m.auth.setup != "" && subtle.ConstantTimeCompare([]byte(got), []byte(m.auth.setup)) == 1
}

func (m *Monitor) handleSetupForm(w http.ResponseWriter, r *http.Request) {
	if !m.setupToken(r) {
		http.Error(w, "this setup link is not valid: the password is already set, or the monitor restarted (it prints a new link on stderr while none is set)", http.StatusForbidden)
		return
	}
	m.render(w, "setup", pageData{Title: "Set the admin password", CSRF: preCSRF(w, r), Token: r.FormValue("token")})
}

func (m *Monitor) handleSetup(w http.ResponseWriter, r *http.Request) {
	if err := checkPreCSRF(r); err != nil {
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	if !m.setupToken(r) {
		m.failed(clientAddr(r))
		http.Error(w, "this setup link is not valid: the password is already set, or the monitor restarted", http.StatusForbidden)
		return
	}
	pw := r.PostFormValue("password")
	msg := ""
	switch {
	case len([]rune(pw)) < minPassword:
		msg = "The password needs at least 10 characters."
	case pw != r.PostFormValue("confirm"):
		msg = "The two passwords differ."
	}
	if msg != "" {
		w.WriteHeader(http.StatusBadRequest)
		m.render(w, "setup", pageData{Title: "Set the admin password", CSRF: preCSRF(w, r), Token: r.FormValue("token"), Error: msg})
		return
	}
	m.auth.mu.Lock()
	if m.auth.setup == "" { // raced with another setup
		m.auth.mu.Unlock()
		http.Error(w, "the password was set meanwhile; log in", http.StatusConflict)
		return
	}
	err := m.st.setCredential(pw)
	if err == nil {
		m.auth.setup = ""
	}
	m.auth.mu.Unlock()
	if err != nil {
		m.log.Error("cannot save the admin password (check free disk space for --data)", "err", err)
		http.Error(w, "cannot save the password", http.StatusInternalServerError)
		return
	}
	m.log.Info("portal admin password set", "client", clientAddr(r))
	m.newSession(w, r)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}
