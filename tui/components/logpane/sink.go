package logpane

import (
	"bytes"
	"context"
	"sync"

	tea "charm.land/bubbletea/v2"
)

// maxPending bounds the lines kept between two reads of the sink: a burst
// of replication logs must not grow memory while the UI is busy.
const maxPending = 2000

// Sink is an io.Writer for slog handlers (logline.NewLineHandler) whose lines
// go to the log pane instead of the terminal, where they would tear the
// screen. Writes come from any goroutine; the UI reads with Wait.
type Sink struct {
	mu      sync.Mutex
	partial []byte
	pending []string
	dropped int
	notify  chan struct{}
}

// NewSink returns an empty sink.
func NewSink() *Sink { return &Sink{notify: make(chan struct{}, 1)} }

// Write splits p into lines and queues them.
func (s *Sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	s.partial = append(s.partial, p...)
	for {
		i := bytes.IndexByte(s.partial, '\n')
		if i < 0 {
			break
		}
		s.pending = append(s.pending, string(s.partial[:i]))
		s.partial = s.partial[i+1:]
	}
	if n := len(s.pending); n > maxPending {
		s.dropped += n - maxPending
		s.pending = append(s.pending[:0:0], s.pending[n-maxPending:]...)
	}
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
	return len(p), nil
}

// LinesMsg carries lines written to the sink since the last one.
type LinesMsg struct {
	Lines   []string
	Dropped int // lines lost to a burst larger than the queue
}

// Wait is a tea.Cmd that returns the next lines written. The UI issues it
// again after each LinesMsg; it returns nil when ctx ends.
func (s *Sink) Wait(ctx context.Context) tea.Cmd {
	return func() tea.Msg {
		for {
			if m, ok := s.take(); ok {
				return m
			}
			select {
			case <-s.notify:
			case <-ctx.Done():
				return nil
			}
		}
	}
}

func (s *Sink) take() (LinesMsg, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pending) == 0 && s.dropped == 0 {
		return LinesMsg{}, false
	}
	m := LinesMsg{Lines: s.pending, Dropped: s.dropped}
	s.pending, s.dropped = nil, 0
	return m, true
}
