package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
)

// InstanceIdentitySource gives the EC2 instance identity document that ADDEC2METADATA adds to
// records. *imds.Client implements it (IMDSv2: a session token first, then the document);
// tests point one at a fake endpoint.
type InstanceIdentitySource interface {
	GetInstanceIdentityDocument(ctx context.Context, in *imds.GetInstanceIdentityDocumentInput, optFns ...func(*imds.Options)) (*imds.GetInstanceIdentityDocumentOutput, error)
}

// DefaultMetadataTTL is how long ADDEC2METADATA's instance identity is used before it is read
// again (the Amazon Kinesis Agent's AddEC2MetadataConverter default, one hour).
const DefaultMetadataTTL = time.Hour

// ec2MetadataFetchTimeout bounds one read of the identity document: a reader waits for it.
const ec2MetadataFetchTimeout = 5 * time.Second

// instanceMetadata caches the fields ADDEC2METADATA adds, for every flow of the agent. As in
// AddEC2MetadataConverter, a refresh is tried once per TTL, whether or not the previous one
// worked, so an unreachable endpoint costs one wait per TTL, not one per record.
type instanceMetadata struct {
	src InstanceIdentitySource
	log *slog.Logger
	now func() time.Time

	mu      sync.Mutex
	fields  []byte // `"privateIp":...,...` without braces, or nil when none could be read
	fetched time.Time
	tried   bool
	warned  bool
}

// get returns the fields to add, refreshing them when older than ttl.
func (m *instanceMetadata) get(ttl time.Duration) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if m.tried && now.Sub(m.fetched) < ttl {
		return m.fields
	}
	m.tried, m.fetched = true, now
	if m.src == nil {
		return m.fields
	}
	ctx, cancel := context.WithTimeout(context.Background(), ec2MetadataFetchTimeout)
	defer cancel()
	out, err := m.src.GetInstanceIdentityDocument(ctx, nil)
	if err != nil {
		m.log.Warn("ADDEC2METADATA: cannot read the EC2 instance identity; keeping what was read before, trying again after metadataTTL", "err", err)
		return m.fields
	}
	d := out.InstanceIdentityDocument
	// The fields and names of AddEC2MetadataConverter, in its order; metadataTimestamp in its
	// SimpleDateFormat "yyyy-MM-dd'T'HH:mm:ssZ", here in UTC.
	var b bytes.Buffer
	for i, kv := range [][2]string{
		{"privateIp", d.PrivateIP}, {"availabilityZone", d.AvailabilityZone}, {"instanceId", d.InstanceID},
		{"instanceType", d.InstanceType}, {"accountId", d.AccountID}, {"amiId", d.ImageID},
		{"region", d.Region}, {"metadataTimestamp", now.UTC().Format("2006-01-02T15:04:05-0700")},
	} {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(kv[0])
		v, _ := json.Marshal(kv[1])
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	m.fields = b.Bytes()
	return m.fields
}

// addEC2Metadata adds the instance's identity to a record that is a JSON object, as the Amazon
// Kinesis Agent's AddEC2MetadataConverter does (after LOGTOJSON or CSVTOJSON, or for lines
// that are JSON). A record that is not a JSON object, or one processed before any identity
// could be read, passes unchanged, as that converter falls back to the raw data. A key the
// record already has appears twice, the instance's last, which JSON readers take as the value.
// Instance tags (which the converter reads with EC2 DescribeTags) are not added.
type addEC2Metadata struct {
	meta   *instanceMetadata
	ttl    time.Duration
	pretty bool
}

func (a *addEC2Metadata) apply(in []byte, _ *processor) ([]byte, bool) {
	if a.meta == nil {
		return in, true
	}
	body := bytes.TrimSpace(stripNewline(in))
	if len(body) < 2 || body[0] != '{' || body[len(body)-1] != '}' || !json.Valid(body) {
		return in, true
	}
	fields := a.meta.get(a.ttl)
	if len(fields) == 0 {
		a.meta.warnOnce()
		return in, true
	}
	out := make([]byte, 0, len(body)+len(fields)+2)
	out = append(out, body[:len(body)-1]...)
	if len(bytes.TrimSpace(body[1:len(body)-1])) > 0 {
		out = append(out, ',')
	}
	out = append(out, fields...)
	out = append(out, '}')
	if a.pretty {
		var buf bytes.Buffer
		if json.Indent(&buf, out, "", "  ") == nil {
			out = buf.Bytes()
		}
	}
	return append(out, '\n'), true
}

func (m *instanceMetadata) warnOnce() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.warned {
		m.warned = true
		m.log.Warn("ADDEC2METADATA: no EC2 instance identity; records are sent without it")
	}
}
