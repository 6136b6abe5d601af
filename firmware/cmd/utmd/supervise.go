package main

import (
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// Restart backoff of the supervisor: the first restart is immediate (the
// kernel bypasses inspection while utmd is down), then 1 s, doubling up to
// maxBackoff; a child that ran stableAfter resets it.
const (
	firstBackoff = time.Second
	maxBackoff   = 10 * time.Second
	stableAfter  = time.Minute
)

// supervise runs this binary with args less --supervise as a child and
// restarts it whenever it dies, until SIGINT or SIGTERM (forwarded to the
// child; SIGHUP is forwarded too, and the child reloads its signatures) or the child exits 0 on its own (it was stopped on purpose). It
// returns the exit status. Real boxes use systemd instead
// (firmware/systemd/utmd.service); this is for hosts without it and for
// tests.
func supervise(log *slog.Logger, args []string) int {
	self, err := os.Executable()
	if err != nil {
		log.Error("supervisor: cannot find its own binary to run as the child", "err", err)
		return 1
	}
	var child []string
	for _, a := range args {
		switch strings.TrimLeft(a, "-") {
		case "supervise", "supervise=true":
			continue
		}
		child = append(child, a)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	hups := make(chan os.Signal, 1) // SIGHUP: forwarded, the child reloads its rules
	signal.Notify(hups, syscall.SIGHUP)
	defer signal.Stop(hups)

	backoff := time.Duration(0)
	for restarts := 0; ; restarts++ {
		cmd := exec.Command(self, child...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, os.Stdout, os.Stderr
		start := time.Now()
		if err := cmd.Start(); err != nil {
			log.Error("supervisor: cannot start utmd", "err", err)
			return 1
		}
		log.Info("supervisor: utmd started", "pid", cmd.Process.Pid, "restarts", restarts)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		var werr error
	wait:
		select {
		case sig := <-sigs:
			log.Info("supervisor: stopping utmd", "signal", sig.String(), "pid", cmd.Process.Pid)
			cmd.Process.Signal(sig)
			<-done
			return 0
		case <-hups:
			log.Info("supervisor: SIGHUP: asking utmd to reload its signatures", "pid", cmd.Process.Pid)
			cmd.Process.Signal(syscall.SIGHUP)
			goto wait
		case werr = <-done:
		}
		if werr == nil {
			log.Info("supervisor: utmd exited cleanly; not restarting", "pid", cmd.Process.Pid)
			return 0
		}
		var ee *exec.ExitError
		status := werr.Error()
		if errors.As(werr, &ee) {
			status = ee.ProcessState.String()
		}
		if time.Since(start) >= stableAfter {
			backoff = 0
		}
		log.Warn("supervisor: utmd died; restarting it (the kernel passes traffic uninspected until it is back)",
			"pid", cmd.Process.Pid, "status", status, "ran", time.Since(start).Round(time.Millisecond), "restart_in", backoff)
		if backoff > 0 {
			select {
			case sig := <-sigs:
				log.Info("supervisor: stopping", "signal", sig.String())
				return 0
			case <-time.After(backoff):
			}
		}
		backoff = nextBackoff(backoff)
	}
}

// nextBackoff is the wait before the restart after one that waited d:
// 0 (the first restart), 1 s, 2 s, 4 s, ... up to maxBackoff.
func nextBackoff(d time.Duration) time.Duration { return min(max(2*d, firstBackoff), maxBackoff) }
