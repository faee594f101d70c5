'use strict';
// The baseline: the simplest Node shipper that does the job. Read the file with fs, split on '\n',
// JSON.stringify({message}) each line, POST batches of 1,000 as NDJSON over one keep-alive
// connection (undici), no compression, one batch in flight.
//   node simple-shipper.cjs FILE URL
// When the last batch is acknowledged it says so on stdout and stays alive until SIGTERM, so the
// bench can read its CPU time and peak RSS from /proc like the agent's.
const { createReadStream } = require('node:fs');
const { Pool } = require('undici');

const [file, url] = process.argv.slice(2);
const target = new URL(url);
const pool = new Pool(target.origin, { connections: 1 });

async function post(batch) {
  const { statusCode, body } = await pool.request({
    path: target.pathname, method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: batch.join('\n') + '\n',
  });
  await body.dump();
  if (statusCode !== 200) throw new Error(`receiver answered ${statusCode}`);
}

async function main() {
  let batch = [];
  let rest = '';
  let lines = 0;
  for await (const chunk of createReadStream(file, { encoding: 'utf8', highWaterMark: 1 << 20 })) {
    const parts = (rest + chunk).split('\n');
    rest = parts.pop();
    for (const message of parts) {
      batch.push(JSON.stringify({ message }));
      lines++;
      if (batch.length === 1000) { await post(batch); batch = []; }
    }
  }
  if (rest !== '') { batch.push(JSON.stringify({ message: rest })); lines++; }
  if (batch.length) await post(batch);
  process.stdout.write(JSON.stringify({ event: 'sent', lines }) + '\n');
}

main().catch((e) => { process.stderr.write(`${e.stack}\n`); process.exit(1); });
setInterval(() => {}, 1 << 30); // stay measurable until the bench ends it
process.once('SIGTERM', () => process.exit(0));
