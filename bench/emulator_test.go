package bench

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// The emulator benchmarks put the same load on two Kinesis emulators, each a process of its
// own so that its CPU time is read apart from the client's from /proc/PID/stat:
//   - kinesistest: `shardline emulator --unthrottled`, the kinesistest server as a command,
//     with its size checks on and its token buckets off, since the load is meant to find the
//     server's own speed, not the shard limits;
//   - kinesis-mock: the instance scripts/emulators.sh started, when SHARDLINE_KINESIS_ENDPOINT
//     names it (its PID is read from the script's state directory).
//
// Each reports rec/s (records moved per second of wall time), server-cores (the server's CPU
// seconds per second; at most 1 means it used at most one core) and server-us/rec.

var (
	emuOnce sync.Once
	emuURL  string
	emuPID  int
	emuErr  error
	emuCmd  *exec.Cmd
)

// emulatorProcess builds cmd/shardline and starts its emulator once per test binary.
func emulatorProcess(b *testing.B) (string, int) {
	emuOnce.Do(func() {
		dir, err := os.MkdirTemp("", "shardline-emulator")
		if err != nil {
			emuErr = err
			return
		}
		bin := filepath.Join(dir, "shardline")
		build := exec.Command("go", "build", "-o", bin, "./cmd/shardline")
		build.Dir = ".." // the main module, whose go.sum covers the command's dependencies
		if out, err := build.CombinedOutput(); err != nil {
			emuErr = fmt.Errorf("build shardline: %v\n%s", err, out)
			return
		}
		emuCmd = exec.Command(bin, "emulator", "--unthrottled", "--region", "us-east-1")
		// The kernel ends the emulator when this process ends: TestMain (in producer_test.go)
		// knows only the stub.
		emuCmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		stdout, _ := emuCmd.StdoutPipe()
		if err := emuCmd.Start(); err != nil {
			emuErr = err
			return
		}
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err != nil {
			emuErr = fmt.Errorf("the emulator did not print its endpoint: %v", err)
			return
		}
		emuURL, emuPID = strings.TrimSpace(line), emuCmd.Process.Pid
	})
	if emuErr != nil {
		b.Fatal(emuErr)
	}
	return emuURL, emuPID
}

// kinesisMock returns kinesis-mock's endpoint and PID, or skips when it is not running.
func kinesisMock(b *testing.B) (string, int) {
	ep := os.Getenv("SHARDLINE_KINESIS_ENDPOINT")
	if ep == "" {
		b.Skip("SHARDLINE_KINESIS_ENDPOINT is not set (scripts/emulators.sh start, then . .emulators/env)")
	}
	state := os.Getenv("SHARDLINE_EMULATOR_DIR")
	if state == "" {
		state = filepath.Join("..", ".emulators")
	}
	pid := 0
	if raw, err := os.ReadFile(filepath.Join(state, "kinesis.pid")); err == nil {
		pid, _ = strconv.Atoi(strings.TrimSpace(string(raw)))
	}
	return ep, pid
}

// processCPU is the CPU time, user and kernel, of pid and its descendants (kinesis-mock runs
// under a launcher), read from /proc. Zero when pid is 0 or /proc is unreadable.
func processCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	const tick = 100 // USER_HZ on Linux
	children := map[int][]int{}
	ticks := map[int]int64{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// The command name, in parentheses, may hold spaces; the fields after it are fixed.
		s := string(raw)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 13 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		children[ppid] = append(children[ppid], p)
		ticks[p] = ut + st
	}
	var total int64
	for todo := []int{pid}; len(todo) > 0; {
		p := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		total += ticks[p]
		todo = append(todo, children[p]...)
	}
	return time.Duration(total) * time.Second / tick
}

func emulatorClient(ep string) *kinesis.Client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     time.Minute,
	}
	return kinesis.New(kinesis.Options{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("bench", "bench", ""),
		BaseEndpoint: aws.String(ep),
		// A stalled emulator (kinesis-mock has left a PutRecords unanswered for minutes) fails
		// the run instead of hanging it.
		HTTPClient:       &http.Client{Transport: tr, Timeout: time.Minute},
		RetryMaxAttempts: 3,
	})
}

type emulatorTarget struct {
	name string
	find func(b *testing.B) (string, int)
}

var emulatorTargets = []emulatorTarget{
	{"kinesistest", emulatorProcess},
	{"kinesis-mock", kinesisMock},
}

var streamSeq atomic.Int64

// newBenchStream creates a stream of shards shards and waits until it is ACTIVE.
func newBenchStream(b *testing.B, kc *kinesis.Client, shards int32) string {
	ctx := context.Background()
	name := fmt.Sprintf("bench-%d-%d", os.Getpid(), streamSeq.Add(1))
	if _, err := kc.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(shards)}); err != nil {
		b.Fatal(err)
	}
	w := kinesis.NewStreamExistsWaiter(kc, func(o *kinesis.StreamExistsWaiterOptions) { o.MinDelay = 100 * time.Millisecond })
	if err := w.Wait(ctx, &kinesis.DescribeStreamInput{StreamName: aws.String(name)}, 2*time.Minute); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_, _ = kc.DeleteStream(context.Background(), &kinesis.DeleteStreamInput{StreamName: aws.String(name)})
	})
	return name
}

func reportServer(b *testing.B, records int, wall, serverCPU time.Duration, pid int) {
	b.ReportMetric(float64(records)/wall.Seconds(), "rec/s")
	if pid != 0 {
		b.ReportMetric(serverCPU.Seconds()/wall.Seconds(), "server-cores")
		b.ReportMetric(serverCPU.Seconds()*1e6/float64(records), "server-us/rec")
	}
}

// BenchmarkEmulatorPutRecords sends PutRecords of 500 records of 100 bytes from 8 goroutines
// to a 4-shard stream; an op is one call.
func BenchmarkEmulatorPutRecords(b *testing.B) {
	data := make([]byte, 100)
	ks := keys()
	for _, tg := range emulatorTargets {
		b.Run(tg.name, func(b *testing.B) {
			ep, pid := tg.find(b)
			kc := emulatorClient(ep)
			name := newBenchStream(b, kc, 4)
			entries := make([]types.PutRecordsRequestEntry, 500)
			for i := range entries {
				entries[i] = types.PutRecordsRequestEntry{PartitionKey: aws.String(ks[i%len(ks)]), Data: data}
			}
			const workers = 8
			var next atomic.Int64
			cpu0, t0 := processCPU(pid), time.Now()
			b.ResetTimer()
			var wg sync.WaitGroup
			for range workers {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						out, err := kc.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: aws.String(name), Records: entries})
						if err != nil {
							b.Error(err)
							return
						}
						if n := aws.ToInt32(out.FailedRecordCount); n != 0 {
							b.Errorf("%d entries failed", n)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			reportServer(b, b.N*len(entries), time.Since(t0), processCPU(pid)-cpu0, pid)
		})
	}
}

// BenchmarkEmulatorGetRecords reads a shard of 20,000 records of 100 bytes with GetRecords of
// up to 10,000 records from 4 goroutines, each call from the shard's start; an op is one call.
func BenchmarkEmulatorGetRecords(b *testing.B) {
	data := make([]byte, 100)
	for _, tg := range emulatorTargets {
		b.Run(tg.name, func(b *testing.B) {
			ep, pid := tg.find(b)
			kc := emulatorClient(ep)
			ctx := context.Background()
			name := newBenchStream(b, kc, 1)
			entries := make([]types.PutRecordsRequestEntry, 500)
			for i := range entries {
				entries[i] = types.PutRecordsRequestEntry{PartitionKey: aws.String("k"), Data: data}
			}
			for range 40 {
				out, err := kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(name), Records: entries})
				if err != nil || aws.ToInt32(out.FailedRecordCount) != 0 {
					b.Fatalf("filling the stream: %v %+v", err, out)
				}
			}
			it, err := kc.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(name), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
			if err != nil {
				b.Fatal(err)
			}
			const workers = 4
			var next, records atomic.Int64
			cpu0, t0 := processCPU(pid), time.Now()
			b.ResetTimer()
			var wg sync.WaitGroup
			for range workers {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						out, err := kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator, Limit: aws.Int32(10000)})
						if err != nil {
							b.Error(err)
							return
						}
						if len(out.Records) == 0 {
							b.Error("GetRecords returned no records")
							return
						}
						records.Add(int64(len(out.Records)))
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			reportServer(b, int(records.Load()), time.Since(t0), processCPU(pid)-cpu0, pid)
		})
	}
}
