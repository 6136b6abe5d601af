// Command labload is the traffic of the lab benchmark (hack/bench/lab and
// hack/bench/soak): a server and the clients that measure through the box.
// It runs inside the benchmark's network namespaces. Dev-only.
//
//	labload serve --http ADDR --echo ADDR     HTTP /bytes?n=N, and a TCP echo
//	labload get --for 3s URL                  repeated downloads, new connection each: Mbit/s
//	labload cps --for 5s --c 8 ADDR           connect, 1 byte each way, close: connections/s
//	labload rr --for 3s ADDR                  1-byte round trips on one connection: p50/p99 µs
//	labload hold --n 10000 --for 10m ADDR     hold n echo connections, a few bytes each every --every
//
// Every client prints one line of "key value" pairs the scripts parse.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("labload: ")
	if len(os.Args) < 2 {
		usage()
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "serve":
		serve(args)
	case "get":
		get(args)
	case "cps":
		cps(args)
	case "rr":
		rr(args)
	case "hold":
		hold(args)
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: labload serve|get|cps|rr|hold ... (see the package doc)")
	os.Exit(2)
}

// chunk is what /bytes repeats: the body costs no allocation per request.
var chunk = func() []byte {
	b := make([]byte, 1<<20)
	for i := range b {
		b[i] = byte('a' + i%26)
	}
	return b
}()

func serve(args []string) {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	httpAddr := fs.String("http", "", "HTTP listen address")
	echoAddr := fs.String("echo", "", "TCP echo listen address")
	fs.Parse(args)
	if *httpAddr != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/bytes", func(w http.ResponseWriter, r *http.Request) {
			n, err := strconv.Atoi(r.URL.Query().Get("n"))
			if err != nil || n < 0 {
				http.Error(w, "want /bytes?n=SIZE", http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Header().Set("Content-Length", strconv.Itoa(n))
			for n > 0 {
				k := min(n, len(chunk))
				if _, err := w.Write(chunk[:k]); err != nil {
					return
				}
				n -= k
			}
		})
		srv := &http.Server{Addr: *httpAddr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { log.Fatal(srv.ListenAndServe()) }()
	}
	if *echoAddr != "" {
		ln, err := net.Listen("tcp", *echoAddr)
		if err != nil {
			log.Fatal(err)
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil { // e.g. out of file descriptors: keep the held flows
					log.Printf("echo: %v", err)
					time.Sleep(10 * time.Millisecond)
					continue
				}
				go echo(c)
			}
		}()
	}
	log.Printf("serving http=%s echo=%s", *httpAddr, *echoAddr)
	select {}
}

// echo writes back what c reads until c ends. Not io.Copy(c, c): that
// splices through a pipe, three descriptors per flow instead of one.
func echo(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func get(args []string) {
	fs := flag.NewFlagSet("get", flag.ExitOnError)
	dur := fs.Duration("for", 3*time.Second, "keep downloading this long (at least one download)")
	fs.Parse(args)
	url := fs.Arg(0)
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, DisableCompression: true}}
	var bytes, n int64
	start := time.Now()
	for n == 0 || time.Since(start) < *dur {
		resp, err := client.Get(url)
		if err != nil {
			log.Fatalf("get %s: %v", url, err)
		}
		k, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || k != resp.ContentLength {
			log.Fatalf("get %s: status %d, %d of %d bytes: %v", url, resp.StatusCode, k, resp.ContentLength, err)
		}
		bytes += k
		n++
	}
	el := time.Since(start).Seconds()
	fmt.Printf("mbps %.1f downloads %d per_s %.1f\n", float64(bytes)*8/el/1e6, n, float64(n)/el)
}

func cps(args []string) {
	fs := flag.NewFlagSet("cps", flag.ExitOnError)
	dur := fs.Duration("for", 5*time.Second, "how long")
	conc := fs.Int("c", 8, "concurrent clients")
	fs.Parse(args)
	addr := fs.Arg(0)
	var done, failed atomic.Int64
	start := time.Now()
	end := start.Add(*dur)
	ctx, cancel := context.WithDeadline(context.Background(), end)
	defer cancel()
	var wg sync.WaitGroup
	for range *conc {
		wg.Go(func() {
			var b [1]byte
			d := net.Dialer{Timeout: 2 * time.Second}
			// The loop watches the clock, not ctx.Err(): a dial past the
			// deadline fails at once, before ctx's timer has fired, and
			// would spin counting failures until it does.
			for time.Now().Before(end) {
				c, err := d.DialContext(ctx, "tcp", addr)
				if err != nil {
					if time.Now().Before(end) {
						failed.Add(1)
					}
					continue
				}
				c.SetDeadline(time.Now().Add(2 * time.Second))
				_, err = c.Write(b[:])
				if err == nil {
					_, err = io.ReadFull(c, b[:])
				}
				c.Close()
				if err != nil {
					failed.Add(1)
					continue
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	fmt.Printf("cps %.0f conns %d failed %d\n", float64(done.Load())/el, done.Load(), failed.Load())
}

func rr(args []string) {
	fs := flag.NewFlagSet("rr", flag.ExitOnError)
	dur := fs.Duration("for", 3*time.Second, "how long")
	fs.Parse(args)
	c, err := net.Dial("tcp", fs.Arg(0))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	c.(*net.TCPConn).SetNoDelay(true)
	var b [1]byte
	rtts := make([]time.Duration, 0, 1<<16)
	end := time.Now().Add(*dur)
	for time.Now().Before(end) {
		t := time.Now()
		if _, err := c.Write(b[:]); err != nil {
			log.Fatal(err)
		}
		if _, err := io.ReadFull(c, b[:]); err != nil {
			log.Fatal(err)
		}
		rtts = append(rtts, time.Since(t))
	}
	slices.Sort(rtts)
	q := func(p float64) float64 { return float64(rtts[int(p*float64(len(rtts)-1))].Nanoseconds()) / 1e3 }
	fmt.Printf("p50_us %.0f p99_us %.0f n %d\n", q(0.50), q(0.99), len(rtts))
}

func hold(args []string) {
	fs := flag.NewFlagSet("hold", flag.ExitOnError)
	n := fs.Int("n", 10000, "connections")
	dur := fs.Duration("for", 10*time.Minute, "hold them this long once all are open")
	every := fs.Duration("every", 10*time.Second, "each connection sends a few bytes this often")
	fs.Parse(args)
	addr := fs.Arg(0)

	// Open them, 16 at a time, each with a few attempts.
	conns := make([]net.Conn, *n)
	var dialFailed atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range 16 {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(*n); i = next.Add(1) - 1 {
				var err error
				for range 3 {
					if conns[i], err = net.DialTimeout("tcp", addr, 5*time.Second); err == nil {
						break
					}
				}
				if err != nil {
					if dialFailed.Add(1) <= 3 {
						log.Printf("dial: %v", err)
					}
				}
			}
		})
	}
	wg.Wait()
	log.Printf("holding %d connections (%d failed to open) after %.1fs", int64(*n)-dialFailed.Load(), dialFailed.Load(), time.Since(start).Seconds())

	var broken, rounds atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), *dur)
	defer cancel()
	for i, c := range conns {
		if c == nil {
			continue
		}
		// Spread the trickle evenly over the period.
		phase := time.Duration(i) * *every / time.Duration(*n)
		wg.Go(func() {
			defer c.Close()
			buf := []byte("ping")
			select {
			case <-time.After(phase):
			case <-ctx.Done():
				return
			}
			t := time.NewTicker(*every)
			defer t.Stop()
			for {
				c.SetDeadline(time.Now().Add(*every))
				_, err := c.Write(buf)
				if err == nil {
					_, err = io.ReadFull(c, buf)
				}
				if err != nil {
					broken.Add(1)
					if broken.Load() <= 3 {
						log.Printf("flow broken: %v", err)
					}
					return
				}
				rounds.Add(1)
				select {
				case <-t.C:
				case <-ctx.Done():
					return
				}
			}
		})
	}
	wg.Wait()
	fmt.Printf("opened %d dial_failed %d broken %d rounds %d\n", int64(*n)-dialFailed.Load(), dialFailed.Load(), broken.Load(), rounds.Load())
}
