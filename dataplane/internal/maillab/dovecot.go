//go:build linux

package maillab

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Dovecot is Debian's dovecot serving POP3 and IMAP inside a namespace from
// a maildir in the test's temp dir (passwd-file auth, plaintext allowed, no
// TLS, no system paths touched).
type Dovecot struct {
	POP3Addr, IMAPAddr string
	User, Pass         string
	Dir                string // config, maildir and log
}

// StartDovecot starts dovecot on ip (POP3 on 110, IMAP on 143) inside
// namespace ns, with msgs in INBOX in that order (line ends are stored as
// LF; dovecot sends CRLF). It stops at cleanup.
func StartDovecot(t testing.TB, ns, ip string, msgs ...[]byte) *Dovecot {
	t.Helper()
	RequireTool(t, "dovecot", "dovecot-imapd")
	if _, err := os.Stat("/usr/lib/dovecot/pop3"); err != nil {
		RequireTool(t, "/usr/lib/dovecot/pop3", "dovecot-pop3d")
	}
	RequireTool(t, "python3", "python3")
	dir, err := os.MkdirTemp("", "utmm-dovecot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	d := &Dovecot{POP3Addr: ip + ":110", IMAPAddr: ip + ":143", User: "lab", Pass: "labpass", Dir: dir}
	maildir := filepath.Join(dir, "mail", "Maildir")
	for _, sub := range []string{"run", "state", "mail/Maildir/cur", "mail/Maildir/new", "mail/Maildir/tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().Unix()
	for i, m := range msgs {
		lf := bytes.ReplaceAll(m, []byte("\r\n"), []byte("\n"))
		name := fmt.Sprintf("%d.M%dP%d.lab:2,", now+int64(i), i, os.Getpid())
		if err := os.WriteFile(filepath.Join(maildir, "cur", name), lf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("chown", "-R", "nobody:nogroup", filepath.Join(dir, "mail")).CombinedOutput(); err != nil {
		t.Fatalf("chown the maildir to nobody (dovecot's mail user): %v: %s", err, out)
	}
	if err := os.WriteFile(filepath.Join(dir, "passwd"), []byte(d.User+":{PLAIN}"+d.Pass+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`protocols = imap pop3
listen = %[2]s
base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[1]s/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:%[1]s/mail/Maildir
first_valid_uid = 1
pop3_uidl_format = %%08Xu%%08Xv
passdb {
  driver = passwd-file
  args = scheme=PLAIN %[1]s/passwd
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=%[1]s/mail
}
service imap-login {
  inet_listener imap {
    port = 143
  }
  inet_listener imaps {
    port = 0
  }
}
service pop3-login {
  inet_listener pop3 {
    port = 110
  }
  inet_listener pop3s {
    port = 0
  }
}
`, dir, ip)
	cf := filepath.Join(dir, "dovecot.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := inNS(context.Background(), ns, "dovecot", "-F", "-c", cf)
	logf, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dovecot: %v", err)
	}
	dead := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(dead) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt) // dovecot -F stops its children on SIGINT/SIGTERM
		select {
		case <-dead:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-dead
			t.Errorf("dovecot (pid %d) did not stop in 10s after SIGINT; killed", cmd.Process.Pid)
		}
	})
	log := func() string {
		a, _ := os.ReadFile(filepath.Join(dir, "stdout"))
		b, _ := os.ReadFile(filepath.Join(dir, "dovecot.log"))
		return trimOut(append(a, b...))
	}
	waitListen(t, ns, d.POP3Addr, dead, log)
	waitListen(t, ns, d.IMAPAddr, dead, log)
	return d
}

// Fetched is what a POP3 or IMAP client received.
type Fetched struct {
	Data     []byte // the message as the client library returns it (CRLF line ends)
	Complete bool   // the client got the whole answer and the session ended normally
	Error    string // the client library's error when not complete
}

const pyClient = `
import base64, json, sys, poplib, imaplib
kind, host, port, user, pw, arg = sys.argv[1:7]
port = int(port)
out = {"data": "", "complete": False, "error": ""}
try:
    if kind in ("retr", "top"):
        p = poplib.POP3(host, port, timeout=20)
        p.user(user); p.pass_(pw)
        if kind == "retr":
            resp, lines, _ = p.retr(int(arg))
        else:
            resp, lines, _ = p.top(int(arg), int(sys.argv[7]))
        out["data"] = base64.b64encode(b"".join(l + b"\r\n" for l in lines)).decode()
        p.quit()
    elif kind == "fetch":
        m = imaplib.IMAP4(host, port, timeout=20)
        m.login(user, pw); m.select("INBOX")
        typ, data = m.fetch(arg, "(BODY.PEEK[])")
        if typ != "OK" or not data or not isinstance(data[0], tuple):
            raise Exception("FETCH failed: %r %r" % (typ, data))
        out["data"] = base64.b64encode(data[0][1]).decode()
        m.logout()
    elif kind == "fetchchunks":
        # Thunderbird's way with big messages: BODY[]<origin.size> until a
        # chunk comes back short.
        m = imaplib.IMAP4(host, port, timeout=20)
        m.login(user, pw); m.select("INBOX")
        size, data = int(sys.argv[7]), b""
        while True:
            typ, d = m.fetch(arg, "(UID RFC822.SIZE BODY.PEEK[]<%d.%d>)" % (len(data), size))
            if typ != "OK" or not d or not isinstance(d[0], tuple):
                raise Exception("FETCH failed: %r %r" % (typ, d))
            data += d[0][1]
            if len(d[0][1]) < size:
                break
        out["data"] = base64.b64encode(data).decode()
        m.logout()
    elif kind == "fetchpart":
        # Thunderbird's attachments on demand: one MIME part, with its MIME
        # header first when sys.argv[8] is "mime".
        m = imaplib.IMAP4(host, port, timeout=20)
        m.login(user, pw); m.select("INBOX")
        sec = sys.argv[7]
        items = "(BODY.PEEK[%s.MIME] BODY.PEEK[%s])" % (sec, sec) if sys.argv[8] == "mime" else "(BODY.PEEK[%s])" % sec
        typ, d = m.fetch(arg, items)
        parts = [x for x in (d or []) if isinstance(x, tuple)]
        if typ != "OK" or not parts:
            raise Exception("FETCH failed: %r %r" % (typ, d))
        out["data"] = base64.b64encode(parts[-1][1]).decode()
        m.logout()
    elif kind == "append":
        msg = base64.b64decode(sys.stdin.read())
        m = imaplib.IMAP4(host, port, timeout=20)
        m.login(user, pw)
        typ, data = m.append("INBOX", None, None, msg)
        if typ != "OK":
            raise Exception("APPEND failed: %r %r" % (typ, data))
        m.logout()
    out["complete"] = True
except Exception as e:
    out["error"] = "%s: %s" % (type(e).__name__, e)
json.dump(out, sys.stdout)
`

func (d *Dovecot) py(t testing.TB, ns, addr string, stdin []byte, args ...string) Fetched {
	t.Helper()
	host, port := hostPort(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	full := append([]string{"python3", "-c", pyClient, args[0], host, port, d.User, d.Pass}, args[1:]...)
	cmd := inNS(ctx, ns, full...)
	if stdin != nil {
		cmd.Stdin = strings.NewReader(base64.StdEncoding.EncodeToString(stdin))
	}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3 %s client: %v: %s", args[0], err, out)
	}
	var r struct {
		Data     string
		Complete bool
		Error    string
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("python3 %s client output %q: %v", args[0], out, err)
	}
	b, err := base64.StdEncoding.DecodeString(r.Data)
	if err != nil {
		t.Fatal(err)
	}
	return Fetched{Data: b, Complete: r.Complete, Error: r.Error}
}

// POP3Retr logs in from namespace ns and downloads message n (1-based) with
// RETR (python3 poplib) through addr (d.POP3Addr or a relay in front of it).
func (d *Dovecot) POP3Retr(t testing.TB, ns, addr string, n int) Fetched {
	t.Helper()
	return d.py(t, ns, addr, nil, "retr", strconv.Itoa(n))
}

// POP3Top is POP3Retr with TOP n lines.
func (d *Dovecot) POP3Top(t testing.TB, ns, addr string, n, lines int) Fetched {
	t.Helper()
	return d.py(t, ns, addr, nil, "top", strconv.Itoa(n), strconv.Itoa(lines))
}

// IMAPFetch logs in and fetches BODY.PEEK[] of message n (python3
// imaplib; the server answers with a BODY[] literal).
func (d *Dovecot) IMAPFetch(t testing.TB, ns, addr string, n int) Fetched {
	t.Helper()
	return d.py(t, ns, addr, nil, "fetch", strconv.Itoa(n))
}

// IMAPFetchChunks downloads message n in chunks of size bytes
// (BODY.PEEK[]<origin.size> until a chunk is short), as Thunderbird does
// with large messages.
func (d *Dovecot) IMAPFetchChunks(t testing.TB, ns, addr string, n, size int) Fetched {
	t.Helper()
	return d.py(t, ns, addr, nil, "fetchchunks", strconv.Itoa(n), strconv.Itoa(size))
}

// IMAPFetchPart downloads MIME part section (e.g. "2") of message n, its
// MIME header first when withMIME (BODY.PEEK[2.MIME] BODY.PEEK[2]), as
// Thunderbird fetches attachments on demand. Data is the part's content.
func (d *Dovecot) IMAPFetchPart(t testing.TB, ns, addr string, n int, section string, withMIME bool) Fetched {
	t.Helper()
	mode := "plain"
	if withMIME {
		mode = "mime"
	}
	return d.py(t, ns, addr, nil, "fetchpart", strconv.Itoa(n), section, mode)
}

// IMAPAppend logs in and APPENDs msg to INBOX (a synchronizing literal).
func (d *Dovecot) IMAPAppend(t testing.TB, ns, addr string, msg []byte) Fetched {
	t.Helper()
	return d.py(t, ns, addr, msg, "append", "")
}

// Inbox returns the messages in INBOX's maildir (as stored: LF line ends).
func (d *Dovecot) Inbox(t testing.TB) [][]byte {
	t.Helper()
	var out [][]byte
	for _, sub := range []string{"cur", "new"} {
		ents, _ := os.ReadDir(filepath.Join(d.Dir, "mail", "Maildir", sub))
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join(d.Dir, "mail", "Maildir", sub, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b)
		}
	}
	return out
}
