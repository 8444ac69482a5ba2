'use strict';
// Drives the aws-kinesis-agg npm package (an independent implementation of the
// KPL aggregated record format) for the Go interoperability tests in
// aggregation/interop_test.go.
//
//   node kpl-interop.js aggregate   <node_modules dir>  < groups.json
//   node kpl-interop.js deaggregate <node_modules dir>  < records.json
//
// aggregate reads {"groups": [[{pk, ehk, data}, ...], ...]} with data in
// base64 and ehk empty when absent, passes each group to aggregate(), and
// writes {"groups": [[{pk, ehk, data}, ...], ...]}: the Kinesis records the
// package produced for each group, in order.
//
// deaggregate reads {"records": [{pk, ehk, data}, ...]}: Kinesis records as
// read from a stream. It passes each to deaggregateSync() with checksum
// verification and writes {"results": [{error, records: [{pk, ehk, sub,
// data}]}]}, where ehk and sub are null when the package left them undefined.

const path = require('path');

const [mode, modulesDir] = process.argv.slice(2);
if (!['aggregate', 'deaggregate'].includes(mode) || !modulesDir) {
  console.error('usage: node kpl-interop.js aggregate|deaggregate <node_modules dir>');
  process.exit(2);
}
const agg = require(path.join(modulesDir, 'aws-kinesis-agg'));

function readStdin() {
  return new Promise((resolve, reject) => {
    const chunks = [];
    process.stdin.on('data', (c) => chunks.push(c));
    process.stdin.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString('utf8'))));
    process.stdin.on('error', reject);
  });
}

function aggregateGroup(records) {
  return new Promise((resolve, reject) => {
    const out = [];
    let settled = false;
    const input = records.map((r) => {
      const rec = { partitionKey: r.pk, data: Buffer.from(r.data, 'base64') };
      if (r.ehk) {
        rec.explicitHashKey = r.ehk;
      }
      return rec;
    });
    agg.aggregate(
      input,
      (encoded, done) => {
        // The package names the put key ExplicitHashKey in what it emits,
        // though its README says explicitHashKey; accept both.
        const ehk = encoded.ExplicitHashKey !== undefined ? encoded.ExplicitHashKey : encoded.explicitHashKey;
        out.push({ pk: encoded.partitionKey, ehk: ehk || '', data: Buffer.from(encoded.data).toString('base64') });
        done();
      },
      () => {
        if (!settled) {
          settled = true;
          resolve(out);
        }
      },
      (err) => {
        if (!settled) {
          settled = true;
          reject(err);
        }
      },
    );
  });
}

function deaggregateRecord(r) {
  const result = { error: null, records: [] };
  const kinesisRecord = { partitionKey: r.pk, data: r.data, sequenceNumber: '1' };
  if (r.ehk) {
    kinesisRecord.explicitPartitionKey = r.ehk;
  }
  agg.deaggregateSync(kinesisRecord, true, (err, userRecords) => {
    if (err) {
      result.error = String(err && err.message ? err.message : err);
      return;
    }
    for (const u of userRecords || []) {
      result.records.push({
        pk: u.partitionKey,
        ehk: u.explicitPartitionKey === undefined ? null : String(u.explicitPartitionKey),
        sub: u.subSequenceNumber === undefined ? null : Number(u.subSequenceNumber),
        data: u.data,
      });
    }
  });
  return result;
}

async function main() {
  const input = await readStdin();
  let output;
  if (mode === 'aggregate') {
    output = { groups: [] };
    for (const group of input.groups) {
      output.groups.push(await aggregateGroup(group));
    }
  } else {
    output = { results: input.records.map(deaggregateRecord) };
  }
  process.stdout.write(JSON.stringify(output));
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : String(err));
  process.exit(1);
});
