// Command labhost plays the lab's hosts: web and DNS servers on the
// internet side, and the office client that fetches through the box. It
// runs inside the lab's network namespaces (ip netns exec ...). Dev-only.
//
//	labhost serve --http ADDR [--http ADDR ...] --dns ADDR
//	labhost fetch [--dns ADDR] [--header K:V] [--timeout 5s] [--rate BYTES/S] URL
//	labhost probe [--every 20ms] [--for 10s] [--timeout 1s] URL
//	labhost mail --server ADDR [--eicar]
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/openutm/utm/hack/lab"
)

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: labhost serve|fetch ...")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "serve":
		serve(os.Args[2:])
	case "fetch":
		fetch(os.Args[2:])
	case "probe":
		probe(os.Args[2:])
	case "mail":
		sendMail(os.Args[2:])
	default:
		fmt.Fprintln(os.Stderr, "usage: labhost serve|fetch ...")
		os.Exit(2)
	}
}

// DNS answers for the lab.
var zone = map[string]net.IP{
	"www.lab.test":     net.IPv4(198, 18, 2, 2),
	"cnc.utm-lab.test": net.IPv4(198, 18, 2, 66),
	"www6.lab.test":    net.ParseIP(lab.WebIP6),
}

func serve(args []string) {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	var httpAddrs multi
	fs.Var(&httpAddrs, "http", "HTTP listen address (repeatable)")
	dnsAddr := fs.String("dns", "", "DNS (UDP) listen address")
	smtpAddr := fs.String("smtp", "", "SMTP listen address")
	fs.Parse(args)
	mux := http.NewServeMux()
	mux.HandleFunc("/eicar.com", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("X-Canary", lab.CanaryResponseHeader)
		w.Header().Set("Content-Length", strconv.Itoa(len(lab.EICAR)))
		w.Write(lab.EICAR)
	})
	mux.HandleFunc("/big.bin", func(w http.ResponseWriter, r *http.Request) {
		size, _ := strconv.Atoi(r.URL.Query().Get("size"))
		if size <= 0 || size > 512<<20 {
			size = 5 << 20
		}
		body := lab.BigBody(size)
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("X-Canary", lab.CanaryResponseHeader)
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("X-Canary", lab.CanaryResponseHeader)
		w.Write(lab.Page())
	})
	for _, a := range httpAddrs {
		srv := &http.Server{Addr: a, Handler: logRequests(mux), ReadHeaderTimeout: 10 * time.Second}
		go func(a string) { log.Fatal(srv.ListenAndServe()) }(a)
	}
	if *dnsAddr != "" {
		go serveDNS(*dnsAddr)
	}
	if *smtpAddr != "" {
		go serveSMTP(*smtpAddr)
	}
	log.Printf("labhost serving http=%v dns=%s smtp=%s", httpAddrs, *dnsAddr, *smtpAddr)
	select {}
}

func logRequests(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.Printf("http %s %s %s from %s", r.Method, r.Host, r.URL.Path, r.RemoteAddr)
		h.ServeHTTP(w, r)
	})
}

func serveDNS(addr string) {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		log.Fatal(err)
	}
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			log.Fatal(err)
		}
		var q layers.DNS
		if err := q.DecodeFromBytes(buf[:n], gopacket.NilDecodeFeedback); err != nil || len(q.Questions) == 0 {
			continue
		}
		name := strings.ToLower(strings.TrimSuffix(string(q.Questions[0].Name), "."))
		resp := layers.DNS{ID: q.ID, QR: true, AA: true, RD: q.RD, RA: true, Questions: q.Questions}
		ip, ok := zone[name]
		switch qt := q.Questions[0].Type; {
		case ok && qt == layers.DNSTypeA && ip.To4() != nil, ok && qt == layers.DNSTypeAAAA && ip.To4() == nil:
			resp.Answers = []layers.DNSResourceRecord{{Name: q.Questions[0].Name, Type: qt, Class: layers.DNSClassIN, TTL: 300, IP: ip}}
		case !ok:
			resp.ResponseCode = layers.DNSResponseCodeNXDomain
		}
		out := gopacket.NewSerializeBuffer()
		if err := resp.SerializeTo(out, gopacket.SerializeOptions{FixLengths: true}); err != nil {
			continue
		}
		pc.WriteTo(out.Bytes(), from)
		log.Printf("dns %s -> %d answers", name, len(resp.Answers))
	}
}

// Result is what fetch prints, one JSON line.
type Result struct {
	URL      string `json:"url"`
	Status   int    `json:"status"`
	Bytes    int64  `json:"bytes"`
	Length   int64  `json:"length"`
	SHA256   string `json:"sha256"`
	Complete bool   `json:"complete"`
	Error    string `json:"error,omitempty"`
	Millis   int64  `json:"ms"`
}

func fetch(args []string) {
	fs := flag.NewFlagSet("fetch", flag.ExitOnError)
	dns := fs.String("dns", "198.18.2.53:53", "DNS server")
	timeout := fs.Duration("timeout", 10*time.Second, "overall timeout")
	rate := fs.Int("rate", 0, "read at most this many bytes per second (0: unlimited)")
	var headers multi
	fs.Var(&headers, "header", "request header K:V (repeatable)")
	fs.Parse(args)
	url := fs.Arg(0)
	res := Result{URL: url}
	start := time.Now()
	defer func() {
		res.Millis = time.Since(start).Milliseconds()
		json.NewEncoder(os.Stdout).Encode(res)
	}()
	resolver := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", *dns)
	}}
	dialer := &net.Dialer{Resolver: resolver, Timeout: *timeout}
	client := &http.Client{Timeout: *timeout, Transport: &http.Transport{DialContext: dialer.DialContext, DisableKeepAlives: true, DisableCompression: true}}
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		res.Error = err.Error()
		return
	}
	req.Header.Set("X-Canary", lab.CanaryRequestHeader)
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	resp, err := client.Do(req)
	if err != nil {
		res.Error = err.Error()
		return
	}
	defer resp.Body.Close()
	res.Status, res.Length = resp.StatusCode, resp.ContentLength
	h := sha256.New()
	var r io.Reader = resp.Body
	if *rate > 0 {
		r = &slowReader{r: resp.Body, rate: *rate, start: time.Now()}
	}
	n, err := io.Copy(h, r)
	res.Bytes = n
	res.SHA256 = hex.EncodeToString(h.Sum(nil))
	if err != nil {
		res.Error = err.Error()
	}
	res.Complete = err == nil && (res.Length < 0 || n == res.Length)
}

type slowReader struct {
	r     io.Reader
	rate  int
	start time.Time
	n     int
}

func (s *slowReader) Read(p []byte) (int, error) {
	if len(p) > 32<<10 {
		p = p[:32<<10]
	}
	due := s.start.Add(time.Duration(float64(s.n) / float64(s.rate) * float64(time.Second)))
	time.Sleep(time.Until(due))
	n, err := s.r.Read(p)
	s.n += n
	return n, err
}

// ProbeResult is what probe prints: how the office's traffic fared while
// something happened to the box.
type ProbeResult struct {
	Sent     int   `json:"sent"`
	OK       int   `json:"ok"`
	MaxGapMS int64 `json:"max_gap_ms"` // longest time without a successful answer
}

// probe sends a small HTTP request on a new connection every interval and
// reports the longest stretch without an answer.
func probe(args []string) {
	fs := flag.NewFlagSet("probe", flag.ExitOnError)
	every := fs.Duration("every", 20*time.Millisecond, "interval between requests")
	dur := fs.Duration("for", 10*time.Second, "how long to probe")
	timeout := fs.Duration("timeout", time.Second, "timeout of one request")
	fs.Parse(args)
	url := fs.Arg(0)
	client := &http.Client{Timeout: *timeout, Transport: &http.Transport{DisableKeepAlives: true}}
	type answer struct {
		at time.Time
		ok bool
	}
	answers := make(chan answer, 1024)
	start := time.Now()
	sent := 0
	t := time.NewTicker(*every)
	for time.Since(start) < *dur {
		<-t.C
		sent++
		go func() {
			resp, err := client.Get(url)
			ok := err == nil
			if ok {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				ok = err == nil && resp.StatusCode == 200
			}
			answers <- answer{time.Now(), ok}
		}()
	}
	t.Stop()
	var oks []time.Time
	for i := 0; i < sent; i++ {
		if a := <-answers; a.ok {
			oks = append(oks, a.at)
		}
	}
	res := ProbeResult{Sent: sent, OK: len(oks)}
	sort.Slice(oks, func(i, j int) bool { return oks[i].Before(oks[j]) })
	last := start
	for _, at := range oks {
		res.MaxGapMS = max(res.MaxGapMS, at.Sub(last).Milliseconds())
		last = at
	}
	if end := start.Add(*dur); end.After(last) {
		res.MaxGapMS = max(res.MaxGapMS, end.Sub(last).Milliseconds())
	}
	json.NewEncoder(os.Stdout).Encode(res)
}
