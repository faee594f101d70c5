// Boots a container and keeps it up until Ctrl-C (for looking around by hand):
//   node --import tsx test/containers/boot.ts systemd|openrc [--with-node]
// prints the PID to `nsenter -t PID -a` into; powers it off and deletes it on SIGINT/SIGTERM.
import { Container, type InitKind } from '../lib/container';

async function main(): Promise<void> {
  const kind = (process.argv[2] ?? 'systemd') as InitKind;
  const ct = await Container.boot(kind, { withNode: process.argv.includes('--with-node') });
  console.log(`${ct.name}: PID 1 is ${ct.pid1} on the host; dir ${ct.dir}`);
  console.log(`  nsenter -t ${ct.pid1} -a /bin/bash`);
  const stop = async () => {
    await ct.destroy();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  setInterval(() => {}, 1 << 30);
}
void main();
