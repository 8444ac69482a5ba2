// Package metricname holds the naming rules both exporters share, so that a Shardline metric
// gets the same words in Prometheus and in OpenTelemetry.
package metricname

import (
	"strings"
	"unicode"
)

// SplitWords splits a CamelCase name into lower-case words, keeping acronyms whole
// (ShardId -> shard id, DynamoDBReadCapacity -> dynamodb read capacity). Characters other
// than ASCII letters and digits separate words.
func SplitWords(s string) []string {
	// DynamoDB is one word to its users: dynamodb_requests, not dynamo_db_requests.
	s = strings.ReplaceAll(s, "DynamoDB", "Dynamodb")
	var words []string
	var cur []rune
	flush := func() {
		if len(cur) > 0 {
			words = append(words, strings.ToLower(string(cur)))
			cur = cur[:0]
		}
	}
	rs := []rune(s)
	for i, r := range rs {
		if r > unicode.MaxASCII || !(unicode.IsLetter(r) || unicode.IsDigit(r)) {
			flush()
			continue
		}
		if unicode.IsUpper(r) && len(cur) > 0 {
			prev := cur[len(cur)-1]
			nextLower := i+1 < len(rs) && unicode.IsLower(rs[i+1])
			if unicode.IsLower(prev) || unicode.IsDigit(prev) || unicode.IsUpper(prev) && nextLower {
				flush()
			}
		}
		cur = append(cur, r)
	}
	flush()
	return words
}
