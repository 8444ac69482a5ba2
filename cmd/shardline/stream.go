package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/spf13/cobra"
)

// createGrace is how long a stream that was just created may stay invisible to
// DescribeStreamSummary before the wait gives up on it.
const createGrace = 30 * time.Second

func (a *app) streamCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "stream",
		Short: "Create, inspect, reshard and delete streams",
		Long: `The stream commands manage Kinesis data streams. Commands that change a stream wait
until it is ACTIVE again (--wait=false returns at once), showing progress on stderr.`,
		Example: `  shardline stream create clicks --shards 2
  shardline stream describe clicks
  shardline stream split clicks --shard 0
  shardline stream merge clicks --shard 1 --adjacent 2
  shardline stream update-shard-count clicks --shards 4
  shardline stream delete clicks --wait`,
		RunE: groupRunE,
	}
	cmd.AddCommand(
		a.streamCreateCommand(),
		a.streamDescribeCommand(),
		a.streamListCommand(),
		a.streamDeleteCommand(),
		a.streamSplitCommand(),
		a.streamMergeCommand(),
		a.streamUpdateShardCountCommand(),
	)
	return cmd
}

// waitFlags are the flags of the commands that wait for a stream's status.
// They also share --json, since they are the commands that change a stream.
type waitFlags struct {
	wait    bool
	timeout time.Duration
	asJSON  bool
}

func (w *waitFlags) register(cmd *cobra.Command, waitByDefault bool, what string) {
	cmd.Flags().BoolVar(&w.wait, "wait", waitByDefault, "wait until "+what)
	cmd.Flags().DurationVar(&w.timeout, "timeout", defaultWaitTimeout, "give up waiting after this long")
	cmd.Flags().BoolVar(&w.asJSON, "json", false, "print the result as one JSON object instead of a sentence")
}

// changeOutput is the --json form of the commands that change a stream. Field names follow the
// Kinesis API's, as those of stream describe --json do.
type changeOutput struct {
	// Operation is the API call made: CreateStream, DeleteStream, SplitShard, MergeShards or
	// UpdateShardCount.
	Operation  string `json:"Operation"`
	StreamName string `json:"StreamName"`
	// Waited tells whether the command waited for the change to finish.
	Waited bool `json:"Waited"`
	// StreamStatus is ACTIVE (DELETED for a delete) after the wait; without it, the status the
	// change starts in: CREATING, UPDATING or DELETING.
	StreamStatus       string `json:"StreamStatus"`
	StreamMode         string `json:"StreamMode,omitempty"`
	OpenShardCount     *int32 `json:"OpenShardCount,omitempty"`
	PreviousShardCount *int32 `json:"PreviousShardCount,omitempty"`
	// ParentShards are the shards split or merged; ChildShards the shards that replaced them,
	// known after the wait.
	ParentShards []string     `json:"ParentShards,omitempty"`
	ChildShards  []shardEntry `json:"ChildShards,omitempty"`
}

// report prints the result of a change: out as JSON with --json, else the sentence text
// writes.
func (a *app) report(w waitFlags, out changeOutput, text func()) error {
	if !w.asJSON {
		text()
		return nil
	}
	out.Waited = w.wait
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func (w *waitFlags) validate() error {
	if w.timeout <= 0 {
		return usageErrorf("--timeout must be positive, got %s", w.timeout)
	}
	return nil
}

func (a *app) streamCreateCommand() *cobra.Command {
	var (
		shards   int32
		onDemand bool
		wf       waitFlags
	)
	cmd := &cobra.Command{
		Use:   "create STREAM",
		Short: "Create a stream",
		Long: `Create a stream, provisioned with --shards shards (default 1) or in on-demand mode, and wait
until it is ACTIVE.`,
		Example: `  shardline stream create orders --shards 4
  shardline stream create events --on-demand
  shardline stream create scratch --wait=false`,
		Args: exactArgs(1, "a stream name"),
		RunE: a.runE(func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := wf.validate(); err != nil {
				return err
			}
			if !onDemand && shards < 1 {
				return usageErrorf("--shards must be at least 1, got %d", shards)
			}
			kc, err := a.kinesis(cmd.Context())
			if err != nil {
				return err
			}
			in := &kinesis.CreateStreamInput{StreamName: aws.String(name)}
			mode := "provisioned, " + plural(int64(shards), "shard")
			if onDemand {
				in.StreamModeDetails = &types.StreamModeDetails{StreamMode: types.StreamModeOnDemand}
				mode = "on-demand"
			} else {
				in.ShardCount = aws.Int32(shards)
				in.StreamModeDetails = &types.StreamModeDetails{StreamMode: types.StreamModeProvisioned}
			}
			if _, err := kc.CreateStream(cmd.Context(), in); err != nil {
				var inUse *types.ResourceInUseException
				if errors.As(err, &inUse) {
					return fmt.Errorf("stream %s already exists", name)
				}
				return apiError(name, "creating stream "+name, err)
			}
			out := changeOutput{Operation: "CreateStream", StreamName: name, StreamStatus: string(types.StreamStatusCreating),
				StreamMode: string(in.StreamModeDetails.StreamMode)}
			if !wf.wait {
				return a.report(wf, out, func() { fmt.Fprintf(a.stdout, "creating stream %s (%s)\n", name, mode) })
			}
			summary, err := a.waitActive(cmd.Context(), kc, name, wf.timeout, createGrace)
			if err != nil {
				return err
			}
			out.StreamStatus, out.StreamMode, out.OpenShardCount = string(summary.StreamStatus), streamMode(summary), summary.OpenShardCount
			return a.report(wf, out, func() {
				fmt.Fprintf(a.stdout, "created stream %s (%s, %s)\n", name, streamMode(summary),
					plural(int64(aws.ToInt32(summary.OpenShardCount)), "open shard"))
			})
		}),
	}
	cmd.Flags().Int32Var(&shards, "shards", 1, "number of shards of a provisioned stream")
	cmd.Flags().BoolVar(&onDemand, "on-demand", false, "create the stream in on-demand capacity mode (Kinesis manages the shards)")
	cmd.MarkFlagsMutuallyExclusive("shards", "on-demand")
	wf.register(cmd, true, "the stream is ACTIVE")
	return cmd
}

func streamMode(s *types.StreamDescriptionSummary) string {
	if s == nil || s.StreamModeDetails == nil || s.StreamModeDetails.StreamMode == "" {
		return "PROVISIONED"
	}
	return string(s.StreamModeDetails.StreamMode)
}

// describeOutput is the --json form of stream describe. Field names follow the Kinesis API's
// spelling so that they read the same as in the AWS CLI's output.
type describeOutput struct {
	StreamName           string       `json:"StreamName"`
	StreamARN            string       `json:"StreamARN"`
	StreamStatus         string       `json:"StreamStatus"`
	StreamMode           string       `json:"StreamMode"`
	RetentionPeriodHours int32        `json:"RetentionPeriodHours"`
	OpenShardCount       int          `json:"OpenShardCount"`
	EncryptionType       string       `json:"EncryptionType,omitempty"`
	CreatedAt            *time.Time   `json:"StreamCreationTimestamp,omitempty"`
	Shards               []shardEntry `json:"Shards"`
}

type shardEntry struct {
	ShardID                string  `json:"ShardId"`
	State                  string  `json:"State"`
	ParentShardID          string  `json:"ParentShardId,omitempty"`
	AdjacentParentShardID  string  `json:"AdjacentParentShardId,omitempty"`
	StartingHashKey        string  `json:"StartingHashKey"`
	EndingHashKey          string  `json:"EndingHashKey"`
	KeyspacePercent        float64 `json:"KeyspacePercent"`
	StartingSequenceNumber string  `json:"StartingSequenceNumber,omitempty"`
	EndingSequenceNumber   string  `json:"EndingSequenceNumber,omitempty"`
}

func newShardEntry(s types.Shard) shardEntry {
	e := shardEntry{
		ShardID:               aws.ToString(s.ShardId),
		State:                 "closed",
		ParentShardID:         aws.ToString(s.ParentShardId),
		AdjacentParentShardID: aws.ToString(s.AdjacentParentShardId),
		KeyspacePercent:       keyspacePercent(s),
	}
	if shardOpen(s) {
		e.State = "open"
	}
	if s.HashKeyRange != nil {
		e.StartingHashKey = aws.ToString(s.HashKeyRange.StartingHashKey)
		e.EndingHashKey = aws.ToString(s.HashKeyRange.EndingHashKey)
	}
	if s.SequenceNumberRange != nil {
		e.StartingSequenceNumber = aws.ToString(s.SequenceNumberRange.StartingSequenceNumber)
		e.EndingSequenceNumber = aws.ToString(s.SequenceNumberRange.EndingSequenceNumber)
	}
	return e
}

func (a *app) streamDescribeCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "describe STREAM",
		Short: "Show a stream and its shards",
		Long: `Show a stream's status, mode and retention, and its shards, open and closed, with their
parents and hash key ranges. KEYSPACE is the share of the hash key space a shard covers.`,
		Example: `  shardline stream describe orders
  shardline stream describe orders --json | jq '.Shards[] | select(.State == "open")'`,
		Args: exactArgs(1, "a stream name"),
		RunE: a.runE(func(cmd *cobra.Command, args []string) error {
			name := args[0]
			kc, err := a.kinesis(cmd.Context())
			if err != nil {
				return err
			}
			sum, err := kc.DescribeStreamSummary(cmd.Context(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
			if err != nil {
				return apiError(name, "describing stream "+name, err)
			}
			shards, err := listShards(cmd.Context(), kc, name)
			if err != nil {
				return err
			}
			s := sum.StreamDescriptionSummary
			out := describeOutput{
				StreamName:           aws.ToString(s.StreamName),
				StreamARN:            aws.ToString(s.StreamARN),
				StreamStatus:         string(s.StreamStatus),
				StreamMode:           streamMode(s),
				RetentionPeriodHours: aws.ToInt32(s.RetentionPeriodHours),
				EncryptionType:       string(s.EncryptionType),
				CreatedAt:            s.StreamCreationTimestamp,
				Shards:               make([]shardEntry, 0, len(shards)),
			}
			for _, sh := range shards {
				e := newShardEntry(sh)
				if e.State == "open" {
					out.OpenShardCount++
				}
				out.Shards = append(out.Shards, e)
			}
			if asJSON {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			}
			return writeDescribe(a, out)
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	return cmd
}

func writeDescribe(a *app, d describeOutput) error {
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Stream:\t%s\n", d.StreamName)
	fmt.Fprintf(tw, "ARN:\t%s\n", d.StreamARN)
	fmt.Fprintf(tw, "Status:\t%s\n", d.StreamStatus)
	fmt.Fprintf(tw, "Mode:\t%s\n", d.StreamMode)
	fmt.Fprintf(tw, "Retention:\t%d hours\n", d.RetentionPeriodHours)
	if d.EncryptionType != "" {
		fmt.Fprintf(tw, "Encryption:\t%s\n", d.EncryptionType)
	}
	fmt.Fprintf(tw, "Shards:\t%d open, %d closed\n", d.OpenShardCount, len(d.Shards)-d.OpenShardCount)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(a.stdout)
	tw = tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SHARD\tSTATE\tPARENT\tADJACENT PARENT\tKEYSPACE\tSTARTING HASH KEY\tENDING HASH KEY")
	for _, s := range d.Shards {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.2f%%\t%s\t%s\n", s.ShardID, s.State, dash(s.ParentShardID),
			dash(s.AdjacentParentShardID), s.KeyspacePercent, s.StartingHashKey, s.EndingHashKey)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// listEntry is one stream in stream list --json.
type listEntry struct {
	StreamName string     `json:"StreamName"`
	StreamARN  string     `json:"StreamARN,omitempty"`
	Status     string     `json:"StreamStatus,omitempty"`
	Mode       string     `json:"StreamMode,omitempty"`
	CreatedAt  *time.Time `json:"StreamCreationTimestamp,omitempty"`
}

func (a *app) streamListCommand() *cobra.Command {
	var (
		asJSON   bool
		pageSize int32
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the streams of the account and region",
		Example: `  shardline stream list
  shardline stream list --json`,
		Args: exactArgs(0, "no arguments"),
		RunE: a.runE(func(cmd *cobra.Command, args []string) error {
			if pageSize < 0 || pageSize > 10000 {
				return usageErrorf("--page-size must be from 1 to 10000, got %d", pageSize)
			}
			kc, err := a.kinesis(cmd.Context())
			if err != nil {
				return err
			}
			entries, err := listStreams(cmd.Context(), kc, pageSize)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				if entries == nil {
					entries = []listEntry{}
				}
				return enc.Encode(entries)
			}
			if len(entries) == 0 {
				// On stderr, so that stdout stays a list a script can read, empty here.
				fmt.Fprintf(a.stderr, "no streams in region %s%s\n", a.resolvedRegion, a.endpointNote())
				return nil
			}
			for _, e := range entries {
				fmt.Fprintln(a.stdout, e.StreamName)
			}
			return nil
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON with each stream's ARN, status and mode")
	cmd.Flags().Int32Var(&pageSize, "page-size", 0, "streams to ask for per ListStreams call (default: the service's)")
	return cmd
}

// listStreams pages through ListStreams. A page that says more streams follow but carries no
// NextToken is continued from its last name with ExclusiveStartStreamName, the older way of
// paging that every implementation understands.
func listStreams(ctx context.Context, kc *kinesis.Client, pageSize int32) ([]listEntry, error) {
	var entries []listEntry
	var limit *int32
	if pageSize > 0 {
		limit = aws.Int32(pageSize)
	}
	in := &kinesis.ListStreamsInput{Limit: limit}
	for {
		out, err := kc.ListStreams(ctx, in)
		if err != nil {
			return nil, apiError("", "listing streams", err)
		}
		summaries := map[string]types.StreamSummary{}
		for _, s := range out.StreamSummaries {
			summaries[aws.ToString(s.StreamName)] = s
		}
		names := out.StreamNames
		if len(names) == 0 {
			for _, s := range out.StreamSummaries {
				names = append(names, aws.ToString(s.StreamName))
			}
		}
		for _, n := range names {
			e := listEntry{StreamName: n}
			if s, ok := summaries[n]; ok {
				e.StreamARN = aws.ToString(s.StreamARN)
				e.Status = string(s.StreamStatus)
				e.CreatedAt = s.StreamCreationTimestamp
				if s.StreamModeDetails != nil {
					e.Mode = string(s.StreamModeDetails.StreamMode)
				}
			}
			entries = append(entries, e)
		}
		if !aws.ToBool(out.HasMoreStreams) || len(names) == 0 {
			return entries, nil
		}
		if out.NextToken != nil && *out.NextToken != "" {
			in = &kinesis.ListStreamsInput{NextToken: out.NextToken, Limit: limit}
		} else {
			last := names[len(names)-1]
			if in.ExclusiveStartStreamName != nil && *in.ExclusiveStartStreamName == last {
				return entries, nil // no progress: stop rather than loop
			}
			in = &kinesis.ListStreamsInput{ExclusiveStartStreamName: aws.String(last), Limit: limit}
		}
	}
}

func (a *app) streamDeleteCommand() *cobra.Command {
	var (
		wf    waitFlags
		force bool
	)
	cmd := &cobra.Command{
		Use:   "delete STREAM",
		Short: "Delete a stream",
		Long: `Delete a stream and all its data. Kinesis deletes it in the background; --wait waits until
it is gone, for scripts that create a stream of the same name next.`,
		Example: `  shardline stream delete scratch
  shardline stream delete scratch --wait
  shardline stream delete scratch --enforce-consumer-deletion`,
		Args: exactArgs(1, "a stream name"),
		RunE: a.runE(func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := wf.validate(); err != nil {
				return err
			}
			kc, err := a.kinesis(cmd.Context())
			if err != nil {
				return err
			}
			_, err = kc.DeleteStream(cmd.Context(), &kinesis.DeleteStreamInput{
				StreamName:              aws.String(name),
				EnforceConsumerDeletion: aws.Bool(force),
			})
			if err != nil {
				return apiError(name, "deleting stream "+name, err)
			}
			out := changeOutput{Operation: "DeleteStream", StreamName: name, StreamStatus: string(types.StreamStatusDeleting)}
			if !wf.wait {
				return a.report(wf, out, func() { fmt.Fprintf(a.stdout, "deleting stream %s\n", name) })
			}
			if err := a.waitDeleted(cmd.Context(), kc, name, wf.timeout); err != nil {
				return err
			}
			out.StreamStatus = "DELETED"
			return a.report(wf, out, func() { fmt.Fprintf(a.stdout, "deleted stream %s\n", name) })
		}),
	}
	cmd.Flags().BoolVar(&force, "enforce-consumer-deletion", false, "delete the stream even if enhanced fan-out consumers are registered")
	wf.register(cmd, false, "the stream is gone")
	return cmd
}

func (a *app) streamSplitCommand() *cobra.Command {
	var (
		shardID string
		at      string
		wf      waitFlags
	)
	cmd := &cobra.Command{
		Use:   "split STREAM --shard SHARD [--at HASH_KEY]",
		Short: "Split an open shard in two",
		Long: `Split an open shard into two children. The second child starts at the hash key --at and
the first ends just before it; without --at the shard is split in the middle of its range.
A shard may be named by its ID (shardId-000000000003) or its number (3).`,
		Example: `  shardline stream split orders --shard shardId-000000000000
  shardline stream split orders --shard 0 --at 85070591730234615865843651857942052864`,
		Args: exactArgs(1, "a stream name"),
		RunE: a.runE(func(cmd *cobra.Command, args []string) error {
			name := args[0]
			id := normalizeShardID(shardID)
			if err := wf.validate(); err != nil {
				return err
			}
			var atKey *big.Int
			if at != "" {
				k, ok := new(big.Int).SetString(at, 10)
				if !ok || k.Sign() < 0 || k.Cmp(hashSpace) >= 0 {
					return usageErrorf("--at %q: want a decimal hash key from 0 to 2^128-1", at)
				}
				atKey = k
			}
			kc, err := a.kinesis(cmd.Context())
			if err != nil {
				return err
			}
			shards, err := listShards(cmd.Context(), kc, name)
			if err != nil {
				return err
			}
			shard, err := openShard(shards, name, id)
			if err != nil {
				return err
			}
			start, end, err := shardRange(shard)
			if err != nil {
				return err
			}
			if atKey == nil {
				// The middle: the second child gets the upper half, rounding so that a shard
				// covering the whole space splits at exactly 2^127.
				width := new(big.Int).Sub(end, start)
				width.Add(width, big.NewInt(1))
				atKey = new(big.Int).Add(start, width.Rsh(width, 1))
			}
			if atKey.Cmp(start) <= 0 || atKey.Cmp(end) > 0 {
				if start.Cmp(end) == 0 {
					return fmt.Errorf("shard %s of stream %s covers a single hash key and cannot be split", id, name)
				}
				return usageErrorf("--at %s is outside shard %s's range %s: the new shard must start after %s and at most at %s",
					atKey, id, formatRange(shard), start, end)
			}
			_, err = kc.SplitShard(cmd.Context(), &kinesis.SplitShardInput{
				StreamName:         aws.String(name),
				ShardToSplit:       aws.String(id),
				NewStartingHashKey: aws.String(atKey.String()),
			})
			if err != nil {
				return apiError(name, "splitting shard "+id+" of stream "+name, err)
			}
			out := changeOutput{Operation: "SplitShard", StreamName: name, StreamStatus: string(types.StreamStatusUpdating), ParentShards: []string{id}}
			if !wf.wait {
				return a.report(wf, out, func() { fmt.Fprintf(a.stdout, "splitting shard %s of stream %s at %s\n", id, name, atKey) })
			}
			summary, err := a.waitActive(cmd.Context(), kc, name, wf.timeout, 0)
			if err != nil {
				return err
			}
			after, err := listShards(cmd.Context(), kc, name)
			if err != nil {
				return err
			}
			var children []types.Shard
			for _, s := range after {
				if aws.ToString(s.ParentShardId) == id && s.AdjacentParentShardId == nil {
					children = append(children, s)
					out.ChildShards = append(out.ChildShards, newShardEntry(s))
				}
			}
			out.StreamStatus, out.OpenShardCount = string(summary.StreamStatus), summary.OpenShardCount
			return a.report(wf, out, func() {
				fmt.Fprintf(a.stdout, "split shard %s of stream %s at %s into:\n", id, name, atKey)
				for _, s := range children {
					fmt.Fprintf(a.stdout, "  %s %s\n", aws.ToString(s.ShardId), formatRange(s))
				}
			})
		}),
	}
	cmd.Flags().StringVar(&shardID, "shard", "", "the shard to split (ID or number)")
	cmd.Flags().StringVar(&at, "at", "", "the starting hash key of the second child (default: the middle of the shard's range)")
	_ = cmd.MarkFlagRequired("shard")
	wf.register(cmd, true, "the stream is ACTIVE again")
	return cmd
}

// openShard finds an open shard or says why it cannot be resharded.
func openShard(shards []types.Shard, stream, id string) (types.Shard, error) {
	s, ok := findShard(shards, id)
	if !ok {
		return s, fmt.Errorf("shard %s not found in stream %s (open shards: %s)", id, stream, openShardIDs(shards))
	}
	if !shardOpen(s) {
		return s, fmt.Errorf("shard %s of stream %s is closed; only open shards can be resharded (open shards: %s)",
			id, stream, openShardIDs(shards))
	}
	return s, nil
}

func (a *app) streamMergeCommand() *cobra.Command {
	var (
		shardID, adjacentID string
		wf                  waitFlags
	)
	cmd := &cobra.Command{
		Use:   "merge STREAM --shard SHARD --adjacent SHARD",
		Short: "Merge two adjacent open shards into one",
		Long: `Merge two open shards whose hash key ranges touch into one shard covering both. Shards
may be named by their IDs or numbers, in either order.`,
		Example: `  shardline stream merge orders --shard shardId-000000000001 --adjacent shardId-000000000002
  shardline stream merge orders --shard 1 --adjacent 2`,
		Args: exactArgs(1, "a stream name"),
		RunE: a.runE(func(cmd *cobra.Command, args []string) error {
			name := args[0]
			id, adj := normalizeShardID(shardID), normalizeShardID(adjacentID)
			if err := wf.validate(); err != nil {
				return err
			}
			if id == adj {
				return usageErrorf("--shard and --adjacent both name %s: a shard cannot be merged with itself", id)
			}
			kc, err := a.kinesis(cmd.Context())
			if err != nil {
				return err
			}
			shards, err := listShards(cmd.Context(), kc, name)
			if err != nil {
				return err
			}
			s1, err := openShard(shards, name, id)
			if err != nil {
				return err
			}
			s2, err := openShard(shards, name, adj)
			if err != nil {
				return err
			}
			if !adjacent(s1, s2) {
				return fmt.Errorf("shards %s %s and %s %s of stream %s are not adjacent: their hash key ranges must touch",
					id, formatRange(s1), adj, formatRange(s2), name)
			}
			// Either order names the same merge; the lower range goes first because some
			// implementations (kinesis-mock) accept only that order.
			lower, upper := id, adj
			if a1, _, _ := shardRange(s1); a1 != nil {
				if a2, _, _ := shardRange(s2); a2 != nil && a2.Cmp(a1) < 0 {
					lower, upper = adj, id
				}
			}
			_, err = kc.MergeShards(cmd.Context(), &kinesis.MergeShardsInput{
				StreamName:           aws.String(name),
				ShardToMerge:         aws.String(lower),
				AdjacentShardToMerge: aws.String(upper),
			})
			if err != nil {
				return apiError(name, "merging shards "+id+" and "+adj+" of stream "+name, err)
			}
			out := changeOutput{Operation: "MergeShards", StreamName: name, StreamStatus: string(types.StreamStatusUpdating), ParentShards: []string{id, adj}}
			if !wf.wait {
				return a.report(wf, out, func() { fmt.Fprintf(a.stdout, "merging shards %s and %s of stream %s\n", id, adj, name) })
			}
			summary, err := a.waitActive(cmd.Context(), kc, name, wf.timeout, 0)
			if err != nil {
				return err
			}
			after, err := listShards(cmd.Context(), kc, name)
			if err != nil {
				return err
			}
			out.StreamStatus, out.OpenShardCount = string(summary.StreamStatus), summary.OpenShardCount
			for _, s := range after {
				p, q := aws.ToString(s.ParentShardId), aws.ToString(s.AdjacentParentShardId)
				if (p == id && q == adj) || (p == adj && q == id) {
					out.ChildShards = []shardEntry{newShardEntry(s)}
					return a.report(wf, out, func() {
						fmt.Fprintf(a.stdout, "merged shards %s and %s of stream %s into %s %s\n",
							id, adj, name, aws.ToString(s.ShardId), formatRange(s))
					})
				}
			}
			return a.report(wf, out, func() { fmt.Fprintf(a.stdout, "merged shards %s and %s of stream %s\n", id, adj, name) })
		}),
	}
	cmd.Flags().StringVar(&shardID, "shard", "", "one shard to merge (ID or number)")
	cmd.Flags().StringVar(&adjacentID, "adjacent", "", "the shard adjacent to it (ID or number)")
	_ = cmd.MarkFlagRequired("shard")
	_ = cmd.MarkFlagRequired("adjacent")
	wf.register(cmd, true, "the stream is ACTIVE again")
	return cmd
}

// adjacent reports whether two shards' hash key ranges touch.
func adjacent(s1, s2 types.Shard) bool {
	a1, b1, err1 := shardRange(s1)
	a2, b2, err2 := shardRange(s2)
	if err1 != nil || err2 != nil {
		return false
	}
	one := big.NewInt(1)
	return new(big.Int).Add(b1, one).Cmp(a2) == 0 || new(big.Int).Add(b2, one).Cmp(a1) == 0
}

func (a *app) streamUpdateShardCountCommand() *cobra.Command {
	var (
		target int32
		wf     waitFlags
	)
	cmd := &cobra.Command{
		Use:   "update-shard-count STREAM --shards N",
		Short: "Reshard a provisioned stream to a number of shards of equal size",
		Long: `Change the number of open shards of a provisioned stream with uniform scaling: Kinesis
splits and merges shards until there are N of (nearly) equal size. Kinesis allows at most
doubling or halving the count in one step.`,
		Example: `  shardline stream update-shard-count orders --shards 8
  shardline stream update-shard-count orders --shards 2 --wait=false`,
		Args: exactArgs(1, "a stream name"),
		RunE: a.runE(func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := wf.validate(); err != nil {
				return err
			}
			if target < 1 {
				return usageErrorf("--shards must be at least 1, got %d", target)
			}
			kc, err := a.kinesis(cmd.Context())
			if err != nil {
				return err
			}
			before, err := kc.DescribeStreamSummary(cmd.Context(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
			if err != nil {
				return apiError(name, "describing stream "+name, err)
			}
			was := aws.ToInt32(before.StreamDescriptionSummary.OpenShardCount)
			_, err = kc.UpdateShardCount(cmd.Context(), &kinesis.UpdateShardCountInput{
				StreamName:       aws.String(name),
				TargetShardCount: aws.Int32(target),
				ScalingType:      types.ScalingTypeUniformScaling,
			})
			if err != nil {
				return apiError(name, "updating the shard count of stream "+name, err)
			}
			out := changeOutput{Operation: "UpdateShardCount", StreamName: name, StreamStatus: string(types.StreamStatusUpdating),
				OpenShardCount: aws.Int32(target), PreviousShardCount: aws.Int32(was)}
			if !wf.wait {
				return a.report(wf, out, func() {
					fmt.Fprintf(a.stdout, "resharding stream %s from %d to %s\n", name, was, plural(int64(target), "shard"))
				})
			}
			summary, err := a.waitActive(cmd.Context(), kc, name, wf.timeout, 0)
			if err != nil {
				return err
			}
			out.StreamStatus, out.OpenShardCount = string(summary.StreamStatus), summary.OpenShardCount
			return a.report(wf, out, func() {
				fmt.Fprintf(a.stdout, "stream %s now has %s (was %d)\n", name,
					plural(int64(aws.ToInt32(summary.OpenShardCount)), "open shard"), was)
			})
		}),
	}
	cmd.Flags().Int32Var(&target, "shards", 0, "the number of open shards to reach")
	_ = cmd.MarkFlagRequired("shards")
	wf.register(cmd, true, "the stream is ACTIVE again")
	return cmd
}
