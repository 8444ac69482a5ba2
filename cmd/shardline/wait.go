package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// defaultWaitTimeout bounds waits for a stream's status. Creating a stream or resharding a
// large one takes minutes on Kinesis; past this something is wrong.
const defaultWaitTimeout = 15 * time.Minute

// A plain progress line repeats the status at this interval while it does not change, so a log
// shows the wait is still going on.
const plainProgressEvery = 30 * time.Second

var errWaitTimeout = errors.New("wait timed out")

// pollDelay spaces status polls: quick at first, because an emulator (and a small stream on
// Kinesis) settles in well under a second, then once a second, well within the
// DescribeStreamSummary limit of 20 calls per second per account.
func pollDelay(attempt int) time.Duration {
	d := 100 * time.Millisecond << attempt
	if d > time.Second || d <= 0 {
		return time.Second
	}
	return d
}

// waitFor polls check until it reports done, showing progress on stderr: a live line with a
// spinner and the elapsed time on a terminal, plain lines otherwise (one when the wait starts,
// one per status change or plainProgressEvery, one at the end). what completes "waiting for".
func (a *app) waitFor(ctx context.Context, what, doneMsg string, timeout time.Duration,
	check func(ctx context.Context) (status string, done bool, err error)) error {
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, errWaitTimeout)
	defer cancel()
	start := time.Now()

	var mu sync.Mutex
	status := "checking"
	var live *liveLine
	if a.terminal {
		live = startLiveLine(a.stderr, 100*time.Millisecond, func(elapsed time.Duration) string {
			mu.Lock()
			defer mu.Unlock()
			return fmt.Sprintf("waiting for %s: %s, %s", what, status, roundDuration(elapsed))
		})
		defer live.Stop()
	} else {
		fmt.Fprintf(a.stderr, "waiting for %s\n", what)
	}

	printed, printedAt := "", start
	for attempt := 0; ; attempt++ {
		st, done, err := check(ctx)
		if err != nil {
			if errors.Is(context.Cause(ctx), errWaitTimeout) {
				return fmt.Errorf("timed out after %s waiting for %s (last status %s)", timeout, what, status)
			}
			return err
		}
		elapsed := time.Since(start)
		if done {
			if live == nil {
				fmt.Fprintf(a.stderr, "%s after %s\n", doneMsg, roundDuration(elapsed))
			}
			return nil
		}
		mu.Lock()
		status = st
		mu.Unlock()
		if live == nil && (st != printed || time.Since(printedAt) >= plainProgressEvery) {
			fmt.Fprintf(a.stderr, "  %s after %s\n", st, roundDuration(elapsed))
			printed, printedAt = st, time.Now()
		}
		t := time.NewTimer(pollDelay(attempt))
		select {
		case <-ctx.Done():
			t.Stop()
			if errors.Is(context.Cause(ctx), errWaitTimeout) {
				return fmt.Errorf("timed out after %s waiting for %s (last status %s)", timeout, what, st)
			}
			return ctx.Err()
		case <-t.C:
		}
	}
}

// waitActive waits until the stream is ACTIVE and returns its summary. A stream that was just
// created may not be visible at once (the API is eventually consistent), so not finding it is
// taken as "not yet" while createGrace lasts.
func (a *app) waitActive(ctx context.Context, kc *kinesis.Client, stream string, timeout, createGrace time.Duration) (*types.StreamDescriptionSummary, error) {
	var summary *types.StreamDescriptionSummary
	start := time.Now()
	err := a.waitFor(ctx, "stream "+stream+" to become ACTIVE", "stream "+stream+" is ACTIVE", timeout,
		func(ctx context.Context) (string, bool, error) {
			out, err := kc.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
			if err != nil {
				var notFound *types.ResourceNotFoundException
				if errors.As(err, &notFound) && time.Since(start) < createGrace {
					return "not visible yet", false, nil
				}
				return "", false, apiError(stream, "describing stream "+stream, err)
			}
			summary = out.StreamDescriptionSummary
			return string(summary.StreamStatus), summary.StreamStatus == types.StreamStatusActive, nil
		})
	return summary, err
}

// waitDeleted waits until the stream no longer exists.
func (a *app) waitDeleted(ctx context.Context, kc *kinesis.Client, stream string, timeout time.Duration) error {
	return a.waitFor(ctx, "stream "+stream+" to be deleted", "stream "+stream+" is deleted", timeout,
		func(ctx context.Context) (string, bool, error) {
			out, err := kc.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
			var notFound *types.ResourceNotFoundException
			if errors.As(err, &notFound) {
				return "", true, nil
			}
			if err != nil {
				return "", false, apiError(stream, "describing stream "+stream, err)
			}
			return string(out.StreamDescriptionSummary.StreamStatus), false, nil
		})
}
