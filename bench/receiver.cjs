'use strict';
// The bench's log receiver, in a process of its own so its CPU is neither counted against the
// shipper under test nor competing with the bench driver's event loop. Plain HTTP, or HTTPS with
// the test CA's server certificate; gunzips when content-encoding is gzip; counts NDJSON records.
//   node receiver.cjs --expect N [--latency] [--cert server.pem --key server.key] [--format F]
//                     [--delay-ms D]
// --scan: OTLP (protobuf and JSON) and Loki bodies are decoded in full only for the first and
// every 64th request; the others' records are counted by a scan (protobuf: the three levels'
// tags and lengths; JSON: the keys each record has once), checked against every full decode. On
// two shared vCPUs the full decode (up to ~9 µs an event for OTLP JSON) bounds these runs, not
// the shipper; the scan takes the receiver's CPU out of the way. (Every 16th request, as before
// 6 December, still cost ~0.3 µs an event of the two shared vCPUs; 64 leaves 16 full decodes in
// a run of 1,000 requests.)
// --delay-ms: each request (not HEC's /ack) is answered D ms after it arrived, as a remote
// destination would after its round trip and indexing, without spending CPU here.
// --format (the SIEM sinks' wire formats; the answer each protocol gives when all went well):
//   ndjson (default) one record a line, 200 {"ok":true}
//   es        _bulk action+source pairs (two lines a record), 200 {"errors":false,"items":[…]}
//   hec       HEC envelopes, one a line, 200 {"text":"Success","code":0}
//   hec-ack   the same with an ackId a request, and /services/collector/ack answering true
//   otlp      ExportLogsServiceRequest protobuf (counted with the official generated code), 200
//   otlp-json OTLP JSON, 200 {}
//   loki      Loki push JSON (values counted), 204
// stdout, one JSON object a line: {event:'listening',port}, then {event:'done',...} when N records
// have arrived, and {event:'final',...} on SIGTERM (more than N means duplicates).
// --latency: every record's message carries "bench-t=<ms since epoch>", and the receiver keeps
// arrival minus that, for percentiles.
const http = require('node:http');
const https = require('node:https');
const { readFileSync } = require('node:fs');
const { gunzipSync } = require('node:zlib');

const argv = process.argv.slice(2);
const flag = (n) => (argv.includes(n) ? argv[argv.indexOf(n) + 1] : undefined);
const expect = Number(flag('--expect'));
const latency = argv.includes('--latency');
const cert = flag('--cert');
const key = flag('--key');
const format = flag('--format') ?? 'ndjson';
const delayMs = Number(flag('--delay-ms') ?? 0);
const scan = argv.includes('--scan');
const SCAN_FULL_EVERY = 64;
let otlpRequest = null;
if (format === 'otlp')
  otlpRequest = require('@opentelemetry/otlp-transformer/build/src/generated/root.js').opentelemetry
    .proto.collector.logs.v1.ExportLogsServiceRequest;
let nextAckId = 0;

/** Base-128 varint at p: [value, next position]. */
function varint(buf, p) {
  let v = 0;
  for (let shift = 0; ; shift += 7) {
    const b = buf[p++];
    if (b === undefined) throw new Error('protobuf cut short');
    v += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) return [v, p];
  }
}

/** LogRecords of an ExportLogsServiceRequest, by its tags and lengths: resource_logs (1) →
 *  scope_logs (2) → log_records (2). */
function protobufRecords(buf, s = 0, e = buf.length, depth = 0) {
  let n = 0;
  for (let p = s; p < e;) {
    const [tag, p1] = varint(buf, p);
    p = p1;
    const wt = tag & 7;
    const field = Math.floor(tag / 8);
    if (wt === 2) {
      const [len, p2] = varint(buf, p);
      p = p2;
      if (depth === 2 && field === 2) n++;
      else if ((depth === 0 && field === 1) || (depth === 1 && field === 2))
        n += protobufRecords(buf, p, p + len, depth + 1);
      p += len;
    } else if (wt === 0) p = varint(buf, p)[1];
    else if (wt === 1) p += 8;
    else if (wt === 5) p += 4;
    else throw new Error(`protobuf wire type ${wt}`);
  }
  return n;
}

/** Occurrences of `needle` in buf. */
function occurrences(buf, needle) {
  let n = 0;
  for (let p = buf.indexOf(needle); p >= 0; p = buf.indexOf(needle, p + needle.length)) n++;
  return n;
}

/** Records counted without decoding (--scan): a quote inside a JSON string is escaped, so
 *  `body":{` (OTLP JSON) and `["` (Loki's values) occur once a record and nowhere else. The body
 *  as it arrived, in pieces: only protobuf needs it in one (a copy of ~600 KiB a request was a
 *  fifth of this receiver's CPU). */
const OTLP_JSON_RECORD = Buffer.from('body":{');
const LOKI_VALUE = Buffer.from('["');
function scanRecords(parts) {
  if (format === 'otlp') return protobufRecords(whole(parts));
  const needle = format === 'otlp-json' ? OTLP_JSON_RECORD : LOKI_VALUE;
  let n = 0;
  let carry = Buffer.alloc(0); // the last needle.length - 1 bytes before this piece
  for (const p of parts) {
    // a needle that starts in carry and ends in p
    const joint = Buffer.concat([carry, p.subarray(0, needle.length - 1)]);
    for (
      let i = joint.indexOf(needle);
      i >= 0 && i < carry.length;
      i = joint.indexOf(needle, i + 1)
    )
      n++;
    n += occurrences(p, needle);
    const tail = p.length >= needle.length - 1 ? p : Buffer.concat([carry, p]);
    carry = tail.subarray(Math.max(0, tail.length - (needle.length - 1)));
  }
  return n;
}

/** The pieces of a body as one Buffer. */
function whole(parts) {
  return parts.length === 1 ? parts[0] : Buffer.concat(parts);
}

/** Records in a body (its pieces) of the --format. */
function countRecords(parts) {
  if (scan && (format === 'otlp' || format === 'otlp-json' || format === 'loki')) {
    if (requests % SCAN_FULL_EVERY !== 1) return scanRecords(parts);
    const full = decodeRecords(whole(parts));
    const scanned = scanRecords(parts);
    if (scanned !== full) {
      out({ event: 'error', message: `--scan counted ${scanned} records, the decode ${full}` });
      process.exit(1);
    }
    return full;
  }
  return decodeRecords(whole(parts));
}

function decodeRecords(body) {
  if (format === 'loki') {
    let n = 0;
    for (const st of JSON.parse(body.toString('utf8')).streams) {
      n += st.values.length;
      if (sample === null && st.values.length) sample = st.values[0][1];
    }
    return n;
  }
  if (format === 'otlp' || format === 'otlp-json') {
    const m = format === 'otlp' ? otlpRequest.decode(body) : JSON.parse(body.toString('utf8'));
    let n = 0;
    for (const rl of m.resourceLogs ?? [])
      for (const sl of rl.scopeLogs ?? []) {
        n += (sl.logRecords ?? []).length;
        if (sample === null && sl.logRecords?.length) sample = JSON.stringify(sl.logRecords[0]);
      }
    return n;
  }
  let n = 0;
  for (let start = 0; start < body.length;) {
    let nl = body.indexOf(10, start);
    if (nl < 0) nl = body.length;
    if (nl > start) {
      n++;
      if (sample === null && !(format === 'es' && n === 1))
        sample = body.toString('utf8', start, nl);
      if (latency) {
        const m = stamp.exec(JSON.parse(body.toString('utf8', start, nl)).message);
        if (m) latencies.push(Date.now() - Number(m[1]));
      }
    }
    start = nl + 1;
  }
  return format === 'es' ? n / 2 : n;
}

/** The answer of a request whose records all went in. */
function answer(req, n) {
  if (format === 'es')
    return `{"errors":false,"items":[${Array(n).fill('{"create":{"status":201}}').join(',')}]}`;
  if (format === 'hec') return '{"text":"Success","code":0}';
  if (format === 'hec-ack') return `{"text":"Success","code":0,"ackId":${nextAckId++}}`;
  if (format === 'otlp-json') return '{}';
  if (format === 'otlp') return Buffer.alloc(0);
  return '{"ok":true}';
}

let records = 0,
  bytes = 0,
  wireBytes = 0,
  requests = 0,
  firstAt = 0,
  lastAt = 0,
  reported = false,
  sample = null,
  active = 0, // requests received and not yet answered (HEC's /ack polls not counted)
  maxActive = 0;
const latencies = [];
const stamp = /bench-t=(\d+)/;
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');

function handle(req, res) {
  const parts = [];
  if (!req.url.startsWith('/services/collector/ack')) {
    active++;
    maxActive = Math.max(maxActive, active);
    res.on('finish', () => active--);
  }
  req.on('data', (d) => parts.push(d));
  req.on('end', () => {
    const now = Date.now();
    let body = parts;
    if (req.url.startsWith('/services/collector/ack')) {
      const acks = {};
      for (const id of JSON.parse(whole(body).toString('utf8')).acks) acks[id] = true;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ acks }));
      return;
    }
    for (const p of body) wireBytes += p.length;
    if (req.headers['content-encoding'] === 'gzip') body = [gunzipSync(whole(body))];
    for (const p of body) bytes += p.length;
    requests++;
    if (!firstAt) firstAt = now;
    const n = countRecords(body);
    const reply = () => {
      if (format === 'loki') {
        res.writeHead(204);
        res.end();
      } else {
        res.writeHead(200, {
          'content-type': format === 'otlp' ? 'application/x-protobuf' : 'application/json',
        });
        res.end(answer(req, n));
      }
    };
    if (delayMs > 0) setTimeout(reply, Math.max(0, now + delayMs - Date.now()));
    else reply();
    records += n;
    lastAt = now;
    if (!reported && records >= expect) {
      reported = true;
      const cpu = process.cpuUsage();
      out({
        event: 'done',
        records,
        requests,
        maxInFlight: maxActive,
        bytes,
        wireBytes,
        firstAt,
        lastAt,
        cpuS: (cpu.user + cpu.system) / 1e6,
        sample,
        latency: latency ? percentiles(latencies) : null,
      });
    }
  });
}

function percentiles(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const at = (p) => s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
  return { n: s.length, min: s[0], p50: at(50), p95: at(95), p99: at(99), max: s[s.length - 1] };
}

const server = cert
  ? https.createServer(
      { cert: readFileSync(cert), key: readFileSync(key), keepAliveTimeout: 60_000 },
      handle,
    )
  : http.createServer({ keepAliveTimeout: 60_000 }, handle);
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => out({ event: 'listening', port: server.address().port }));
process.once('SIGTERM', () => {
  out({ event: 'final', records, requests });
  process.exit(0);
});
