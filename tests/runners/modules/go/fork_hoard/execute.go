// Package function (fork mode): answers holding all but a few of the container's tasks (OS
// threads) and all but a few MiB of its memory (cgroup v1 or v2 counters), so that the next
// call's process would have no room to start beside this one while it is torn down. Every call
// must answer, the next ones included.
package function

import (
	"encoding/json"
	"os"
	"runtime"
	"strconv"
	"strings"
)

var hoard [][]byte

// count reads the first of paths that holds a number ("max": none).
func count(paths ...string) (int64, bool) {
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
		return n, err == nil
	}
	return 0, false
}

func Execute(input json.RawMessage) (any, error) {
	var ask struct {
		Tasks  int64 `json:"leave_tasks"`
		Memory int64 `json:"leave_mib"`
	}
	if err := json.Unmarshal(input, &ask); err != nil {
		return nil, err
	}
	threads := 0
	if ask.Tasks > 0 {
		max, okMax := count("/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/pids.max")
		for okMax {
			current, ok := count("/sys/fs/cgroup/pids/pids.current", "/sys/fs/cgroup/pids.current")
			if !ok || current+ask.Tasks >= max {
				break
			}
			started := make(chan struct{})
			go func() {
				runtime.LockOSThread() // this goroutine's thread stays while it waits
				close(started)
				select {}
			}()
			<-started
			threads++
		}
	}
	mib := 0
	if ask.Memory > 0 {
		max, okMax := count("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory.max")
		for okMax {
			current, ok := count("/sys/fs/cgroup/memory/memory.usage_in_bytes", "/sys/fs/cgroup/memory.current")
			if !ok || current+(ask.Memory+1)<<20 >= max {
				break
			}
			page := make([]byte, 1<<20)
			for i := range page {
				page[i] = 1 // resident, not just reserved
			}
			hoard = append(hoard, page)
			mib++
		}
	}
	return map[string]bool{"threads": threads > 0, "memory": mib > 0}, nil
}
