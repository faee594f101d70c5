'use strict';
// The baseline: the simplest Node shipper that does the job. Read the file with fs, split on '\n',
// JSON.stringify({message}) each line, POST batches of 1,000 as NDJSON over one keep-alive
// connection (undici), no compression, one batch in flight.
//   node simple-shipper.cjs FILE URL
// When the last batch is acknowledged it says so on stdout and stays alive until SIGTERM, so the
// bench can read its CPU time and peak RSS from /proc like the agent's.
//   node simple-shipper.cjs FILE URL [--ca CA.pem] [--gzip]      (FILE - : standard input)
// --ca and --gzip make the like-for-like baseline of guard's https+gzip run: TLS with that CA, each
// batch gzipped (zlib's gzip on the thread pool, level 1, as guard compresses).
const { createReadStream, readFileSync } = require('node:fs');
const { promisify } = require('node:util');
const zlib = require('node:zlib');
const { Pool } = require('undici');

const args = process.argv.slice(2);
const [file, url] = args;
const ca = args.includes('--ca') ? readFileSync(args[args.indexOf('--ca') + 1]) : undefined;
const gzip = args.includes('--gzip') ? promisify(zlib.gzip) : null;
const target = new URL(url);
const pool = new Pool(target.origin, { connections: 1, ...(ca ? { connect: { ca } } : {}) });

async function post(batch) {
  const text = batch.join('\n') + '\n';
  const { statusCode, body } = await pool.request({
    path: target.pathname,
    method: 'POST',
    headers: {
      'content-type': 'application/x-ndjson',
      ...(gzip ? { 'content-encoding': 'gzip' } : {}),
    },
    body: gzip ? await gzip(text, { level: 1 }) : text,
  });
  await body.dump();
  if (statusCode !== 200) throw new Error(`receiver answered ${statusCode}`);
}

async function main() {
  let batch = [];
  let rest = '';
  let lines = 0;
  // FILE '-': standard input (a pipe from `journalctl -o json`, the journal run's baseline)
  const input =
    file === '-'
      ? process.stdin.setEncoding('utf8')
      : createReadStream(file, { encoding: 'utf8', highWaterMark: 1 << 20 });
  for await (const chunk of input) {
    const parts = (rest + chunk).split('\n');
    rest = parts.pop();
    for (const message of parts) {
      batch.push(JSON.stringify({ message }));
      lines++;
      if (batch.length === 1000) {
        await post(batch);
        batch = [];
      }
    }
  }
  if (rest !== '') {
    batch.push(JSON.stringify({ message: rest }));
    lines++;
  }
  if (batch.length) await post(batch);
  process.stdout.write(JSON.stringify({ event: 'sent', lines }) + '\n');
}

main().catch((e) => {
  process.stderr.write(`${e.stack}\n`);
  process.exit(1);
});
setInterval(() => {}, 1 << 30); // stay measurable until the bench ends it
process.once('SIGTERM', () => process.exit(0));
