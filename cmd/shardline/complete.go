package main

import (
	"context"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/spf13/cobra"
)

// completionTimeout bounds the Kinesis calls made to complete a word: a shell waiting on a
// slow or unreachable endpoint must get its prompt back.
const completionTimeout = 5 * time.Second

// addCompletions makes the shell completion that cobra's completion command installs dynamic:
// stream names for a command's STREAM argument (asked of the stream's account with the
// command line's --endpoint, --region and --profile), shard IDs for --shard and --adjacent,
// and the fixed choices of --compression, --partition-key and --from. put's files after the
// stream complete as files.
func (a *app) addCompletions(root *cobra.Command) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if fields := strings.Fields(c.Use); len(fields) > 1 && fields[1] == "STREAM" && c.Name() != "create" {
			c.ValidArgsFunction = a.completeStream
		} else if c.Name() == "create" {
			c.ValidArgsFunction = cobra.NoFileCompletions
		}
		for _, flag := range []string{"shard", "adjacent"} {
			if c.Flags().Lookup(flag) != nil {
				_ = c.RegisterFlagCompletionFunc(flag, a.completeShard)
			}
		}
		fixed := map[string][]string{
			"compression":   {"none", "gzip", "zstd", "snappy"},
			"partition-key": {"random", "hash", "fixed:", "json:"},
			"from":          {"trim-horizon", "latest", "15m", "1h", "24h"},
		}
		for flag, values := range fixed {
			if c.Flags().Lookup(flag) != nil {
				_ = c.RegisterFlagCompletionFunc(flag, fixedCompletions(values))
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// completeStream completes the STREAM argument with the names of the account's streams; later
// arguments (put's files) complete as files.
func (a *app) completeStream(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) > 0 {
		if cmd.Name() == "put" {
			return nil, cobra.ShellCompDirectiveDefault
		}
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), completionTimeout)
	defer cancel()
	kc, err := a.kinesis(ctx)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
	}
	entries, err := listStreams(ctx, kc, 0)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
	}
	var names []cobra.Completion
	for _, e := range entries {
		if strings.HasPrefix(e.StreamName, toComplete) {
			names = append(names, e.StreamName)
		}
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

// completeShard completes --shard and --adjacent with the open shards of the stream named
// first on the command line, each with its hash key range as the description.
func (a *app) completeShard(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) == 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), completionTimeout)
	defer cancel()
	kc, err := a.kinesis(ctx)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
	}
	shards, err := listShards(ctx, kc, args[0])
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
	}
	var ids []cobra.Completion
	for _, s := range shards {
		id := aws.ToString(s.ShardId)
		if shardOpen(s) && strings.HasPrefix(id, toComplete) {
			ids = append(ids, cobra.CompletionWithDesc(id, formatRange(s)))
		}
	}
	return ids, cobra.ShellCompDirectiveNoFileComp
}

// fixedCompletions offers the values that start with the word typed so far. No space follows,
// since fixed: and json: want more.
func fixedCompletions(values []string) cobra.CompletionFunc {
	return func(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		var out []cobra.Completion
		for _, v := range values {
			if strings.HasPrefix(v, toComplete) {
				out = append(out, v)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
	}
}
