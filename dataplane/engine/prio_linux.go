package engine

import "golang.org/x/sys/unix"

// lowerThreadPriority sets the calling OS thread's nice value to 19 (the
// lowest priority); the caller has locked its goroutine to the thread.
func lowerThreadPriority() error {
	return unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), 19)
}
