package main

import (
	"os"
	"sync"
)

// ttyInput is the terminal UI's input: the terminal itself (Bubble Tea
// still sees a terminal, puts it in raw mode and reads it through its
// cancelable reader), with one addition: a read that fails or ends says
// the terminal is gone. A closed terminal does not always send SIGHUP
// (tmux kill-session did not), and Bubble Tea takes the end of its input
// for no error and waits for keys that never come: the UI, and the demo
// around it, would run on without a screen.
type ttyInput struct {
	*os.File
	once sync.Once
	gone chan struct{} // closed at the first failed or empty read
}

func newTTYInput(f *os.File) *ttyInput { return &ttyInput{File: f, gone: make(chan struct{})} }

// Read reads the terminal; EOF or an error (EIO once the terminal hung
// up) closes gone.
func (t *ttyInput) Read(p []byte) (int, error) {
	n, err := t.File.Read(p)
	if err != nil && n == 0 {
		t.once.Do(func() { close(t.gone) })
	}
	return n, err
}

// Gone is closed once the terminal is gone.
func (t *ttyInput) Gone() <-chan struct{} { return t.gone }
