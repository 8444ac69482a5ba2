package agent

import (
	"strings"
	"sync/atomic"

	"github.com/shardline/shardline/metrics"
)

// Stats is a snapshot of the agent's counters since New.
type Stats struct {
	LinesRead        int64 // lines read, header lines and rejected lines included
	RecordsSent      int64 // records handed to the sink for the first time
	RecordsRetried   int64 // re-sends of records whose delivery failed
	RecordsAcked     int64 // records the sink delivered
	RecordsFailed    int64 // failed deliveries (each is retried)
	BytesAcked       int64 // bytes of delivered records
	TruncatedRecords int64 // records cut to the maximum record size
	ParseErrors      int64 // lines a log format rejected, which are not sent
	Truncations      int64 // files found truncated or replaced in place
	FilesTailed      int64 // files open now
	FilesDiscovered  int64 // files that started being tracked
	CheckpointSaves  int64 // checkpoint files written
	CheckpointErrors int64 // checkpoint writes that failed
	InFlightRecords  int64 // records read and not yet delivered
	InFlightBytes    int64 // bytes of read buffers and records not yet delivered
	IdlePolls        int64 // checks of open files that found nothing new
	FilesEvicted     int64 // open files closed to stay within MaxOpenFiles
}

type counters struct {
	linesRead, recordsSent, recordsRetried, recordsAcked, recordsFailed, bytesAcked atomic.Int64
	truncated, parseErrors, truncations, filesTailed, filesDiscovered               atomic.Int64
	checkpointSaves, checkpointErrors, idlePolls, filesEvicted                      atomic.Int64
}

// flowMetrics are a flow's series in the metrics registry; with no registry they do nothing.
type flowMetrics struct {
	linesRead   *metrics.Counter
	recordsSent *metrics.Counter
	bytesSent   *metrics.Counter
	attempts    *metrics.Counter
	sendErrors  *metrics.Counter
	filesTailed *metrics.Gauge
}

// KinesisAgentNamespace is the Amazon Kinesis Agent's default CloudWatch namespace
// (AgentConfiguration's cloudwatch.namespace default), used with KinesisAgentMetrics.
const KinesisAgentNamespace = "AWSKinesisAgent"

// DimDestination is the dimension the Amazon Kinesis Agent's senders (KinesisSender,
// FirehoseSender) put on every metric, used with KinesisAgentMetrics.
const DimDestination = "Destination"

// FlowMetricsDimension returns the dimension of a flow's metrics (LinesRead, RecordsSent,
// BytesSent, RecordSendAttempts, RecordSendErrors, FilesTailed). It is StreamName=STREAM
// (for a Firehose flow, "firehose/NAME"); with kinesisAgent it is the Amazon Kinesis Agent's
// Destination dimension, "KinesisStream:NAME" for a Kinesis stream and
// "DeliveryStream:NAME" for a Firehose delivery stream, as its KinesisSender and
// FirehoseSender write it.
func FlowMetricsDimension(f *Flow, kinesisAgent bool) metrics.Dimension {
	return flowDimension(f.Key(), kinesisAgent)
}

// flowDimension is FlowMetricsDimension from a flow's key.
func flowDimension(key string, kinesisAgent bool) metrics.Dimension {
	stream := key
	if i := strings.IndexByte(key, '|'); i >= 0 {
		stream = key[:i]
	}
	if !kinesisAgent {
		return metrics.Dim(metrics.DimStreamName, stream)
	}
	if ds, ok := strings.CutPrefix(stream, "firehose/"); ok {
		return metrics.Dim(DimDestination, "DeliveryStream:"+ds)
	}
	return metrics.Dim(DimDestination, "KinesisStream:"+stream)
}

func newFlowMetrics(reg *metrics.Registry, d metrics.Dimension) *flowMetrics {
	return &flowMetrics{
		linesRead:   reg.Counter(metrics.LinesRead, metrics.UnitCount, metrics.LevelSummary, d),
		recordsSent: reg.Counter(metrics.RecordsSent, metrics.UnitCount, metrics.LevelSummary, d),
		bytesSent:   reg.Counter(metrics.BytesSent, metrics.UnitBytes, metrics.LevelSummary, d),
		attempts:    reg.Counter(metrics.RecordSendAttempts, metrics.UnitCount, metrics.LevelDetailed, d),
		sendErrors:  reg.Counter(metrics.RecordSendErrors, metrics.UnitCount, metrics.LevelSummary, d),
		filesTailed: reg.Gauge(metrics.FilesTailed, metrics.UnitCount, metrics.LevelSummary, d),
	}
}
