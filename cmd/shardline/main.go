package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// The first SIGINT or SIGTERM cancels the context so that commands stop cleanly (put
	// sends what it read for up to --close-timeout, cat -f ends normally); the signal is the
	// context's cause, which chooses the exit status. The second ends that grace period: put
	// abandons what is unsent and still prints its summary. After it the default handling is
	// back, so a third kills the process at once.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithCancelCause(context.Background())
	hard, abandon := context.WithCancel(context.Background())
	go func() {
		s := <-sigs
		cancel(signalCause{s})
		<-sigs
		signal.Stop(sigs)
		abandon()
	}()
	code := runApp(ctx, hard, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	signal.Stop(sigs)
	os.Exit(code)
}

// signalCause is the cause of a context cancelled by a signal.
type signalCause struct{ sig os.Signal }

func (s signalCause) Error() string { return fmt.Sprintf("received %v", s.sig) }

// exitCode is the status a shell reports for a process ended by the signal: 128 plus its
// number, 130 for SIGINT and 143 for SIGTERM.
func (s signalCause) exitCode() int {
	if n, ok := s.sig.(syscall.Signal); ok {
		return 128 + int(n)
	}
	return exitInterrupted
}
