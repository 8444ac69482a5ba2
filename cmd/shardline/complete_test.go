package main

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestBinaryCompletion asks the built command for completions as the scripts of
// `shardline completion bash|zsh|fish` do (cobra's hidden __complete command): stream names
// from the endpoint, open shard IDs, fixed flag values, and files for put's later arguments.
func TestBinaryCompletion(t *testing.T) {
	ep := awsEnv(t)
	name := newStream(t, ep, 2)
	bin := binary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	complete := func(args ...string) (words []string, directive string) {
		t.Helper()
		r := runBinary(ctx, t, bin, "", append([]string{"__complete", "--endpoint", ep}, args...)...)
		if r.code != 0 {
			t.Fatalf("__complete %q: %s", args, r)
		}
		out := lines(r.stdout)
		if len(out) == 0 || !strings.HasPrefix(out[len(out)-1], ":") {
			t.Fatalf("__complete %q: no directive line: %s", args, r)
		}
		for _, w := range out[:len(out)-1] {
			word, _, _ := strings.Cut(w, "\t") // a description follows a tab
			words = append(words, word)
		}
		return words, out[len(out)-1]
	}
	prefix := name[:len(name)-3]
	for _, cmd := range [][]string{{"stream", "describe"}, {"stream", "delete"}, {"cat"}, {"put"}, {"stream", "split"}} {
		words, dir := complete(append(cmd, prefix)...)
		if !slices.Contains(words, name) || dir != ":4" {
			t.Errorf("completing %q after %v: %v %s, want %s among them and no file completion (:4)", prefix, cmd, words, dir, name)
		}
		for _, w := range words {
			if !strings.HasPrefix(w, prefix) {
				t.Errorf("completing %q after %v offered %q", prefix, cmd, w)
			}
		}
	}
	if words, dir := complete("stream", "split", name, "--shard", ""); !slices.Equal(words, []string{"shardId-000000000000", "shardId-000000000001"}) || dir != ":4" {
		t.Errorf("completing --shard: %v %s", words, dir)
	}
	if words, _ := complete("put", name, "--compression", "z"); !slices.Equal(words, []string{"zstd"}) {
		t.Errorf("completing --compression z: %v", words)
	}
	if _, dir := complete("put", name, ""); dir != ":0" {
		t.Errorf("completing put's files: directive %s, want file completion (:0)", dir)
	}
	if words, dir := complete("stream", "create", ""); len(words) != 0 || dir != ":4" {
		t.Errorf("completing a new stream's name: %v %s", words, dir)
	}
	r := runBinary(ctx, t, bin, "", "completion", "bash")
	if r.code != 0 || !strings.Contains(r.stdout, "__complete") {
		t.Errorf("completion bash: %s", r)
	}
}
