// Command av scans a list of files with signatures/av, one at a time on
// one scanner (the clamscan comparison's single thread), and reports the
// rule load and the scan separately: hack/bench/av/run drives it.
//
//	go run ./hack/bench/av -yara DIR -hdb FILE -files LIST [-out HITS] [-reps N]
//
// The scan time covers reading
// each file and scanning it, as clamscan's does; the best of -reps passes
// is reported. Output, one "key value" a line: rules, load_s, load_rss_mb,
// files, bytes, scan_s, mb_s, detections.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/openutm/utm/signatures/av"
)

func main() {
	yaraDir := flag.String("yara", "", "YARA rule directory")
	hdb := flag.String("hdb", "", "hash list")
	list := flag.String("files", "", "file with the paths to scan, one a line")
	out := flag.String("out", "", "write detections here as 'path: threat (rule) FOUND'")
	reps := flag.Int("reps", 3, "scan passes; the fastest is reported")
	flag.Parse()
	if err := run(*yaraDir, *hdb, *list, *out, *reps); err != nil {
		fmt.Fprintln(os.Stderr, "av bench:", err)
		os.Exit(1)
	}
}

func lines(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out, nil
}

func rss() int64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

func run(yaraDir, hdb, list, out string, reps int) error {
	files, err := lines(list)
	if err != nil {
		return err
	}
	opts := av.Options{Workers: 1, Timeout: 60 * time.Second, MaxFileSize: 100 << 20}
	if yaraDir != "" {
		opts.YaraDirs = []string{yaraDir}
	}
	if hdb != "" {
		opts.HashFiles = []string{hdb}
	}
	runtime.GC()
	rss0 := rss()
	t0 := time.Now()
	s, err := av.New(opts)
	if err != nil {
		return err
	}
	load := time.Since(t0)
	runtime.GC()
	loadRSS := rss() - rss0
	defer s.Close()
	for _, e := range s.LoadErrors {
		fmt.Fprintln(os.Stderr, "load error:", e)
	}
	var best time.Duration
	var total int64
	var hits []string
	for rep := 0; rep < max(1, reps); rep++ {
		hits, total = hits[:0], 0
		t0 := time.Now()
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				return err
			}
			total += int64(len(data))
			r, err := s.ScanWith(data, av.ScanMeta{Name: f})
			if err != nil {
				fmt.Fprintf(os.Stderr, "%s: %v\n", f, err)
			}
			if r.Malicious {
				hits = append(hits, fmt.Sprintf("%s: %s (%s) FOUND", f, r.Threat, r.Rule))
			}
		}
		if d := time.Since(t0); rep == 0 || d < best {
			best = d
		}
	}
	if out != "" {
		w, err := os.Create(out)
		if err != nil {
			return err
		}
		bw := bufio.NewWriter(w)
		for _, h := range hits {
			fmt.Fprintln(bw, h)
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		w.Close()
	}
	n := s.RuleCount - 1 // the built-in EICAR rule
	fmt.Printf("rules %d\nload_s %.3f\nload_rss_mb %.1f\nfiles %d\nbytes %d\nscan_s %.3f\nmb_s %.1f\ndetections %d\n",
		n, load.Seconds(), float64(loadRSS)/(1<<20), len(files), total, best.Seconds(), float64(total)/(1<<20)/best.Seconds(), len(hits))
	return nil
}
