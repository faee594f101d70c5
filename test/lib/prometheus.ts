// Real Prometheus tooling for the metrics tests, from Debian 12's packages (test/run-all.sh puts
// them in place): python3-prometheus-client's text parser, promtool's `check metrics` linter, and
// node_exporter with only its textfile collector, on 127.0.0.1 and a free port, stopped by PID.
import { existsSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { killPid, run, sleep, start } from './proc';
import { freePort } from './syslog-receivers';

/** Where run-all.sh unpacks promtool and node_exporter (from the Debian packages, not installed). */
export const PROM_DIR = process.env.GUARD_PROMETHEUS_DIR ?? '/var/cache/guard-test/prometheus';
export const PROMTOOL = `${PROM_DIR}/promtool`;
export const NODE_EXPORTER = `${PROM_DIR}/prometheus-node-exporter`;
/** Debian's python3 (python3-prometheus-client is a Debian package), not whatever PATH has. */
const PYTHON = '/usr/bin/python3';

export function prometheusToolsMissing(): string | null {
  for (const f of [PROMTOOL, NODE_EXPORTER, PYTHON])
    if (!existsSync(f)) return `${f} is missing: run test/run-all.sh`;
  return null;
}

export interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface PromFamily {
  name: string;
  type: string;
  help: string;
  samples: PromSample[];
}

const PARSE = `
import json, math, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for f in text_string_to_metric_families(sys.stdin.read()):
    out.append({"name": f.name, "type": f.type, "help": f.documentation,
                "samples": [{"name": s.name, "labels": s.labels,
                             "value": s.value if math.isfinite(s.value) else str(s.value)}
                            for s in f.samples]})
print(json.dumps(out))
`;

/** Parses exposition text with prometheus_client's parser; throws what it says on bad input. */
export async function parseExposition(text: string): Promise<PromFamily[]> {
  const r = await run(PYTHON, ['-c', PARSE], { stdin: text });
  if (r.code !== 0) throw new Error(`prometheus_client could not parse:\n${r.stderr}`);
  return JSON.parse(r.stdout) as PromFamily[];
}

/** Every sample named `name` (a counter's family is `x`, its sample `x_total`). */
export function samples(families: PromFamily[], name: string): PromSample[] {
  return families.flatMap((f) => f.samples).filter((s) => s.name === name);
}

/** The one sample of `name` with these labels (a subset); throws when there is not exactly one. */
export function sample(
  families: PromFamily[],
  name: string,
  labels: Record<string, string> = {},
): number {
  const hits = samples(families, name).filter((s) =>
    Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  if (hits.length !== 1)
    throw new Error(`${hits.length} samples of ${name} ${JSON.stringify(labels)}`);
  return hits[0]!.value;
}

/** `promtool check metrics`: the format and Prometheus' naming conventions. */
export async function promtoolCheck(text: string): Promise<{ code: number | null; out: string }> {
  const r = await run(PROMTOOL, ['check', 'metrics'], { stdin: text });
  return { code: r.code, out: r.stdout + r.stderr };
}

/** node_exporter with the textfile collector alone, reading `dir`. */
export class NodeExporter {
  private constructor(
    readonly proc: ChildProcess,
    readonly port: number,
  ) {}

  static async start(dir: string): Promise<NodeExporter> {
    // A free port: node_exporter logs the address it was given, not the one it got, so ask the
    // kernel for a free one and retry if someone else takes it first.
    for (let attempt = 0; attempt < 5; attempt++) {
      const port = await freePort();
      const proc = start(NODE_EXPORTER, [
        '--collector.disable-defaults',
        '--collector.textfile',
        `--collector.textfile.directory=${dir}`,
        `--web.listen-address=127.0.0.1:${port}`,
      ]);
      let err = '';
      proc.stderr?.setEncoding('utf8').on('data', (d: string) => {
        err += d;
      });
      for (let i = 0; i < 100 && proc.exitCode === null; i++) {
        if (/Listening on/.test(err)) {
          try {
            await fetch(`http://127.0.0.1:${port}/metrics`);
            return new NodeExporter(proc, port);
          } catch {
            /* not yet */
          }
        }
        await sleep(50);
      }
      killPid(proc.pid, 'SIGKILL');
      if (!/address already in use/.test(err))
        throw new Error(`node_exporter did not start:\n${err}`);
    }
    throw new Error('node_exporter: no free port in 5 tries');
  }

  async scrape(): Promise<string> {
    const r = await fetch(`http://127.0.0.1:${this.port}/metrics`);
    return r.text();
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode !== null) return;
    const exited = new Promise((resolve) => this.proc.once('exit', resolve));
    killPid(this.proc.pid, 'SIGTERM');
    await exited;
  }
}
