// Micro-benchmark of the SIEM wire encoders alone (no I/O, no agent): the bench's auth.log
// through EventEncoder into 1,000-event NDJSON batches as the pipeline cuts them, then each
// format's encode() over every batch, in process. For working on the encoders; `npm run bench`
// (runs 7–14) is the figure that counts.
//   node --import tsx bench/format-micro.ts [lines] [format,…]
import { existsSync, readFileSync } from 'node:fs';
import pino from 'pino';
import type {
  ElasticsearchSinkConfig,
  LokiSinkConfig,
  OtlpSinkConfig,
  SplunkHecSinkConfig,
} from '../packages/agent/src/config/types';
import { EventEncoder } from '../packages/agent/src/encode';
import type { Batch } from '../packages/agent/src/event';
import { ByteWriter } from '../packages/agent/src/sinks/core/byte-writer';
import { BatchLines } from '../packages/agent/src/sinks/core/lines';
import type { WireFormat } from '../packages/agent/src/sinks/core/wire-format';
import { ElasticsearchFormat } from '../packages/agent/src/sinks/elasticsearch/elasticsearch-sink';
import { LokiFormat } from '../packages/agent/src/sinks/loki/loki-sink';
import { OtlpFormat } from '../packages/agent/src/sinks/otlp/otlp-sink';
import { SplunkHecFormat } from '../packages/agent/src/sinks/splunk_hec/splunk-hec-sink';
import { frameStream, relpFrames, SyslogEncoder } from '../packages/agent/src/sinks/syslog/format';
import { writeAuthLog } from './auth-log';

const lines = Number(process.argv[2] ?? 200_000);
const only = process.argv[3]?.split(',');
const path = `/tmp/guard-encode-micro-${lines}.log`;
if (!existsSync(path)) writeAuthLog(path, lines);
const file = readFileSync(path);

/** The file as the pipeline's batches: NDJSON bodies of 1,000 events. */
function batches(): Batch[] {
  const tail = Buffer.from(
    ',"source":"auth","path":"/var/log/auth.log","host":"web-01","parser":"syslog"}\n',
    'latin1',
  );
  const head = Buffer.from('{"id":"65024.16638017.de351fd6:', 'latin1');
  const enc = new EventEncoder(file.length, 2 << 20);
  const buf = enc.input(file.length);
  file.copy(buf);
  enc.begin(new Date(), head, tail, buf);
  const out: Batch[] = [];
  let events = 0;
  const cut = (): void => {
    const body = Buffer.from(enc.out.subarray(enc.start, enc.pos));
    out.push({ seq: out.length, events, bytes: body.length, body });
    enc.clear();
    events = 0;
  };
  for (let s = 0, nl = buf.indexOf(10); nl !== -1; s = nl + 1, nl = buf.indexOf(10, s)) {
    enc.reserve(enc.bound(nl - s));
    if (!enc.line(buf, s, nl, s, true, true)) throw new Error('declined');
    if (++events === 1000) cut();
  }
  if (events > 0) cut();
  return out;
}

const all = batches();
const total = all.reduce((n, b) => n + b.events, 0);
const base = { name: 'bench', url: 'http://127.0.0.1/' };
const log = pino({ level: 'silent' });
const formats: [string, WireFormat][] = [
  [
    'elasticsearch',
    new ElasticsearchFormat(
      { ...base, index: 'guard-%Y.%m.%d', pipeline: null } as unknown as ElasticsearchSinkConfig,
      'web-01',
    ),
  ],
  [
    'splunk_hec',
    new SplunkHecFormat(
      {
        ...base,
        sourcetype: 'guard',
        index: null,
        acknowledgements: true,
      } as unknown as SplunkHecSinkConfig,
      'web-01',
      log,
    ),
  ],
  [
    'otlp',
    new OtlpFormat(
      { ...base, encoding: 'protobuf', serviceName: 'guard' } as unknown as OtlpSinkConfig,
      'web-01',
    ),
  ],
  [
    'otlp-json',
    new OtlpFormat(
      { ...base, encoding: 'json', serviceName: 'guard' } as unknown as OtlpSinkConfig,
      'web-01',
    ),
  ],
  [
    'loki',
    new LokiFormat(
      { ...base, labels: ['host', 'source'], tenant: null } as unknown as LokiSinkConfig,
      'web-01',
    ),
  ],
];
for (const [, f] of formats) f.path(new URL('http://127.0.0.1/'));
const syslog = new SyslogEncoder({
  format: 'rfc5424',
  facility: 1,
  severity: 5,
  sdId: 'guard@32473',
});

const out = new ByteWriter();
/** Best of 5 rounds of the process's CPU time (GC threads included) (the machine is shared: wall time is not the figure). */
const run = (name: string, each: (b: Batch) => number): void => {
  if (only && !only.includes(name)) return;
  let best = Infinity;
  let bytes = 0;
  for (let round = 0; round < 6; round++) {
    const c0 = process.cpuUsage();
    bytes = 0;
    for (const b of all) bytes += each(b);
    const c = process.cpuUsage(c0);
    if (round > 0) best = Math.min(best, ((c.user + c.system) * 1000) / total);
  }
  console.log(
    `${name.padEnd(14)} ${best.toFixed(0).padStart(5)} ns CPU/event, ${(bytes / total).toFixed(0)} bytes/event`,
  );
};
console.log(`${total} events in ${all.length} batches`);
run('ndjson', (b) => BatchLines.of(b.body).count && b.body.length);
for (const [name, f] of formats)
  run(name, (b) => {
    out.reset();
    let lines: BatchLines | undefined;
    return f.encode(b, () => (lines ??= BatchLines.of(b.body)), null, out).length;
  });
run('syslog-tcp', (b) => frameStream(syslog.encode(b.body), 'octet_counting').length);
run('syslog-relp', (b) => {
  const m = syslog.encode(b.body);
  const items = Array.from({ length: m.starts.length }, (_, i) => i);
  return relpFrames(
    m,
    items,
    items.map((i) => i + 1),
  ).length;
});
