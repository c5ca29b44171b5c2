package forkd

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// holdLimit bounds what a spare may write to stderr before its call starts.
const holdLimit = 1 << 20

// relay copies a spare's stderr (and its children's) to the container's stderr.
//
// What the spare writes while it loads is held until its call starts (release): a pre-started
// spare's start-up output belongs to the call it serves, not after the previous call's log
// marker, and is dropped when no call comes. Once every writer is dead, wait returns: all the
// call's output is then written, and the log marker can follow it.
type relay struct {
	mu      sync.Mutex // guards held, dropped, live
	held    []byte
	dropped int
	live    bool
	writing sync.Mutex // held while writing to: writes stay in order, off the caller's path
	to      io.Writer
	done    chan struct{}
}

func newRelay(from *os.File, to io.Writer) *relay {
	r := &relay{to: to, done: make(chan struct{})}
	go r.copy(from)
	return r
}

func (r *relay) copy(from *os.File) {
	defer close(r.done)
	defer from.Close()
	chunk := make([]byte, 32<<10)
	for {
		n, err := from.Read(chunk)
		if n > 0 {
			r.mu.Lock()
			if r.live {
				r.mu.Unlock()
				r.writing.Lock()
				_, _ = r.to.Write(chunk[:n])
				r.writing.Unlock()
				continue
			}
			if room := holdLimit - len(r.held); room > 0 {
				keep := n
				if keep > room {
					keep = room
				}
				r.held = append(r.held, chunk[:keep]...)
				r.dropped += n - keep
			} else {
				r.dropped += n
			}
			r.mu.Unlock()
		}
		if err != nil {
			return
		}
	}
}

// release passes on what was held, then everything from now on. It does not wait for the
// write (a host slow to read stderr must not hold up the call's timeout).
func (r *relay) release() {
	r.mu.Lock()
	if r.live {
		r.mu.Unlock()
		return
	}
	held, dropped := r.held, r.dropped
	r.held, r.live = nil, true
	r.writing.Lock() // free until now: nothing was live; taken before any live write can be
	r.mu.Unlock()
	go func() {
		defer r.writing.Unlock()
		_, _ = r.to.Write(held)
		if dropped > 0 {
			fmt.Fprintf(r.to, "executor-forkd: %d more bytes written while the module loaded were dropped\n", dropped)
		}
	}()
}

// wait returns once every writer has closed the pipe (they are dead) and all is written, or
// false at the deadline.
func (r *relay) wait(deadline time.Time) bool {
	select { // usually so already: the runner closes its stderr before it stops
	case <-r.done:
		if r.writing.TryLock() {
			r.writing.Unlock()
			return true
		}
	default:
	}
	written := make(chan struct{})
	go func() {
		<-r.done
		r.writing.Lock()
		r.writing.Unlock() // the last write has ended
		close(written)
	}()
	select {
	case <-written:
		return true
	case <-time.After(time.Until(deadline)):
		return false
	}
}
