package runner

import (
	"bytes"
	"math"
	"os"
	"strconv"
	"syscall"
	"time"
)

// usage is what a call used (docs/RUNNERS.md, "Usage"): CPU seconds of this process and of
// the children it waited for during the call, the peak resident set in bytes (null where it
// cannot be the call's own), the call's wall seconds.
type usage struct {
	CPUTime    float64 `json:"cpu_time"`
	PeakMemory *int64  `json:"peak_memory"`
	WallTime   float64 `json:"wall_time"`
}

// serving is set by Serve: this process answers many calls, and its ru_maxrss is the peak
// over its life. The kernel's high-water mark is then reset before each call
// (/proc/self/clear_refs, "5") and read from VmHWM after it; where the reset is refused
// (gVisor), a serve-mode call reports no peak. A one-shot process (fresh, pool, a fork-mode
// spare) serves one call: its ru_maxrss is the call's.
var serving bool

type usageMark struct {
	wall          time.Time
	own, children syscall.Rusage
	peakWasReset  bool
}

func usageNow() usageMark {
	mark := usageMark{peakWasReset: serving && resetPeak()}
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &mark.own)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &mark.children)
	mark.wall = time.Now()
	return mark
}

func usageSince(before usageMark) *usage {
	wall := time.Since(before.wall).Seconds()
	var own, children syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &own)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children)
	cpu := cpuSeconds(&own) - cpuSeconds(&before.own) + cpuSeconds(&children) - cpuSeconds(&before.children)
	var peak *int64
	switch {
	case !serving:
		kib := own.Maxrss
		if children.Maxrss > kib {
			kib = children.Maxrss
		}
		peak = bytesOf(kib)
	case before.peakWasReset:
		if kib, ok := highWaterMark(); ok {
			// A child waited for during this call whose peak passed every earlier child's
			// shows in RUSAGE_CHILDREN's maxrss; a smaller one is below what that says.
			if children.Maxrss > before.children.Maxrss && children.Maxrss > kib {
				kib = children.Maxrss
			}
			peak = bytesOf(kib)
		}
	}
	return &usage{CPUTime: round6(cpu), PeakMemory: peak, WallTime: round6(wall)}
}

func cpuSeconds(r *syscall.Rusage) float64 {
	return float64(r.Utime.Nano()+r.Stime.Nano()) / 1e9
}

func bytesOf(kib int64) *int64 {
	b := kib * 1024
	return &b
}

func round6(x float64) float64 {
	return math.Round(math.Max(x, 0)*1e6) / 1e6
}

func resetPeak() bool {
	file, err := os.OpenFile("/proc/self/clear_refs", os.O_WRONLY, 0)
	if err != nil {
		return false
	}
	_, err = file.Write([]byte("5"))
	return file.Close() == nil && err == nil
}

// highWaterMark is VmHWM of /proc/self/status, in KiB.
func highWaterMark() (int64, bool) {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for _, line := range bytes.Split(status, []byte("\n")) {
		if bytes.HasPrefix(line, []byte("VmHWM:")) {
			fields := bytes.Fields(line[len("VmHWM:"):])
			if len(fields) == 0 {
				return 0, false
			}
			kib, err := strconv.ParseInt(string(fields[0]), 10, 64)
			return kib, err == nil
		}
	}
	return 0, false
}
