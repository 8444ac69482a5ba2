package metrics

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// LogSink writes the registry's per-interval aggregates to a slog.Logger, for running
// without CloudWatch or next to it. Each interval it logs one record per series that has
// something to report, with the same aggregation the CloudWatch publisher applies before
// roll-up: a counter's increase and total, a gauge's sampled last/min/max, a distribution's
// count, sum, min, max and p50/p90/p99 over the interval (min and max within the histogram's
// error, as CloudWatch would see them).
//
// Its methods are safe for concurrent use and do nothing on a nil *LogSink.
type LogSink struct {
	col      *collector
	logger   *slog.Logger
	stop     chan struct{}
	done     chan struct{}
	mu       sync.Mutex // serialises writing a snapshot
	once     sync.Once
	disabled bool
}

// NewLogSink starts logging reg's series at or below level every interval (default one
// minute) to logger (default slog.Default()), at slog.LevelInfo with the message "metric".
// Stop it with Close.
func NewLogSink(reg *Registry, logger *slog.Logger, interval time.Duration, level Level) *LogSink {
	if interval <= 0 {
		interval = DefaultInterval
	}
	if logger == nil {
		logger = slog.Default()
	}
	level = level.effective()
	s := &LogSink{
		col:      newCollector(reg, level, interval, time.Now()),
		logger:   logger,
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		disabled: reg == nil || level == LevelNone,
	}
	if s.disabled {
		close(s.done)
		return s
	}
	go func() {
		defer close(s.done)
		runLoop(s.stop, time.Now, interval, interval, s.col.sample, func() { s.Flush(context.Background()) })
	}()
	return s
}

// Flush logs what was recorded since the last interval now, in the calling goroutine.
func (s *LogSink) Flush(ctx context.Context) {
	if s == nil || s.disabled {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	points, _ := s.col.collect(time.Now())
	for _, p := range points {
		s.logPoint(ctx, p)
	}
}

func (s *LogSink) logPoint(ctx context.Context, p point) {
	attrs := make([]slog.Attr, 0, 12)
	attrs = append(attrs, slog.String("name", p.name), slog.String("unit", string(p.unit)))
	if len(p.dims) > 0 {
		dims := make([]any, 0, len(p.dims))
		for _, d := range p.dims {
			dims = append(dims, slog.String(d.Name, d.Value))
		}
		attrs = append(attrs, slog.Group("dims", dims...))
	}
	switch p.kind {
	case KindCounter:
		attrs = append(attrs, slog.Float64("delta", p.stat.sum), slog.Int64("total", p.total))
	case KindGauge:
		attrs = append(attrs, slog.Float64("value", p.stat.last), slog.Float64("min", p.stat.min),
			slog.Float64("max", p.stat.max), slog.Int64("samples", int64(p.stat.count)))
	case KindDistribution:
		h := intervalView(p.hist)
		attrs = append(attrs, slog.Int64("count", h.Count), slog.Float64("sum", h.Sum),
			slog.Float64("min", h.Min), slog.Float64("max", h.Max),
			slog.Float64("p50", h.Quantile(0.5)), slog.Float64("p90", h.Quantile(0.9)), slog.Float64("p99", h.Quantile(0.99)))
	}
	s.logger.LogAttrs(ctx, slog.LevelInfo, "metric", attrs...)
}

// intervalView replaces an interval histogram's lifetime Min and Max by the values
// CloudWatch receives for its extremes.
func intervalView(h DistributionSnapshot) DistributionSnapshot {
	values, _ := h.valuesCounts()
	if len(values) > 0 {
		h.Min, h.Max = values[0], values[len(values)-1]
	}
	return h
}

// Close logs the last, partial interval and stops the sink. It returns ctx.Err() if ctx ends
// before the logging goroutine has stopped.
func (s *LogSink) Close(ctx context.Context) error {
	if s == nil {
		return nil
	}
	first := false
	s.once.Do(func() {
		first = true
		if !s.disabled {
			close(s.stop)
		}
	})
	select {
	case <-s.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if first {
		s.Flush(ctx)
	}
	return nil
}
