package metrics

import (
	"io"
	"log/slog"
)

var discardLogger = slog.New(slog.DiscardHandler)

// newTestLogger logs JSON without timestamps, so tests can search the output.
func newTestLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
}
