// `guardctl status` for a person: the verdict and its reasons, then the processes, every source
// file and every sink as tables fitted to the terminal.
import type { FileState, JournalStatus } from '@guard/agent/src/status/status';
import { fitLine, paint, renderTable, type Cell, type Output, type Style } from '../table';
import { classify, journalTrouble, sinkTrouble, type Health, type StatusReport } from './report';

const HEALTH_STYLE: Record<Health, Style[]> = {
  healthy: ['bold', 'green'],
  degraded: ['bold', 'yellow'],
  down: ['bold', 'red'],
};
const STATE_STYLE: Record<FileState, Style | null> = {
  flowing: 'green',
  idle: null,
  rotated: 'cyan',
  waiting: 'yellow',
  refused: 'red',
  no_match: 'yellow',
};

export function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  if (s < 86400)
    return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[u]}`;
}

export function ago(iso: string | null | undefined, now: number): string {
  if (!iso) return '-';
  const t = Date.parse(iso);
  return Number.isNaN(t) ? iso : `${duration((now - t) / 1000)} ago`;
}

/** A journal directory as a row of the file table: entries of lag, the cursor, gaps in red. */
function journalRow(source: string, j: JournalStatus, now: number): Cell[] {
  const trouble = journalTrouble(source, j);
  const seqnum = /;i=([0-9a-f]+)/.exec(j.cursor ?? '');
  const detail = trouble.length
    ? trouble.map((t) => t.slice(t.indexOf(': ', t.indexOf('journal ')) + 2)).join('; ')
    : `${j.files.length} files, ${seqnum ? `shipped up to seqnum ${parseInt(seqnum[1]!, 16)}` : 'nothing shipped yet'}`;
  return [
    { text: `${source} [journal]` },
    { text: `journal ${j.directory}` },
    { text: j.state, style: j.state === 'error' ? 'red' : j.state === 'flowing' ? 'green' : null },
    { text: `${j.lagEntries} ent` },
    { text: duration(j.lagSeconds) },
    { text: ago(j.newestEntry, now) },
    { text: detail, style: trouble.length ? 'red' : null },
  ];
}

export function renderStatus(r: StatusReport, out: Output, now = Date.now()): string[] {
  const { health, reasons } = classify(r);
  const lines: string[] = [];
  const head = `guard: ${health}`;
  const tail =
    reasons.length === 1
      ? `: ${reasons[0]}`
      : reasons.length > 1
        ? ` (${reasons.length} problems)`
        : '';
  const first = fitLine(head + tail, out);
  lines.push(
    paint(out, HEALTH_STYLE[health], first.slice(0, head.length)) + first.slice(head.length),
  );
  if (reasons.length > 1) for (const why of reasons) lines.push(fitLine(`  - ${why}`, out));
  lines.push('');

  // the processes
  const h = r.helper;
  const helperUser =
    h.uid !== null
      ? `${h.user ?? h.uid} (${h.uid})`
      : h.pid !== null
        ? (h.uidNote ?? 'unknown')
        : '-';
  const sock = h.socket;
  const sockText = !sock.exists
    ? `no socket at ${sock.path}${sock.error ? ` (${sock.error})` : ''}`
    : `socket ${sock.path} ${sock.isSocket ? '' : '(not a socket!) '}${sock.mode ?? '?'} ${sock.owner ?? '?'}:${sock.group ?? '?'}`;
  const procRows: Cell[][] = [
    [
      { text: 'helper' },
      {
        text: h.pid !== null ? String(h.pid) : 'not running',
        style: h.pid !== null ? null : 'red',
      },
      { text: helperUser },
      { text: sockText, style: sock.exists && sock.isSocket ? null : 'red' },
    ],
  ];
  const a = r.agent;
  if (a) {
    const link = a.helper.connected
      ? `helper connected${a.helper.openPath ? ` (open path: ${a.helper.openPath})` : ''}`
      : `helper NOT connected${a.helper.lastError ? ` (${a.helper.lastError})` : ''}`;
    procRows.push([
      { text: 'agent' },
      { text: String(a.agent.pid) },
      { text: `${a.agent.user} (${a.agent.uid})` },
      {
        text: `up ${duration(a.agent.uptimeSeconds)}, ${link}${a.agent.paused ? ', reading PAUSED' : ''}, ${a.totals.linesRead} lines read, ${a.totals.eventsShipped} shipped`,
        style: a.helper.connected && !a.agent.paused ? null : 'yellow',
      },
    ]);
  } else {
    procRows.push([
      { text: 'agent' },
      { text: 'unreachable', style: 'red' },
      { text: '-' },
      { text: r.agentError ?? '', style: 'red' },
    ]);
  }
  const au = r.audit;
  const auditd =
    au.auditdRunning === null
      ? 'auditd: unknown'
      : au.auditdRunning
        ? 'auditd running'
        : 'auditd not running';
  const rules =
    au.guardRules !== null
      ? `${au.guardRules} guard rules loaded`
      : `guard rules: ${au.guardRulesNote ?? 'unknown'}`;
  const access =
    au.accessGranted === true
      ? 'audit access granted'
      : au.accessGranted === false
        ? `audit access REFUSED (${au.accessNote ?? ''})`
        : `audit access: ${au.accessNote ?? 'unknown'}`;
  procRows.push([
    { text: 'audit' },
    { text: '-' },
    { text: '-' },
    {
      text: `${auditd}; ${rules}; ${access}`,
      style: au.accessGranted === false || au.auditdRunning === false ? 'yellow' : null,
    },
  ]);
  lines.push(
    ...renderTable(
      [{ header: 'PART' }, { header: 'PID' }, { header: 'USER' }, { header: 'DETAIL', min: 12 }],
      procRows,
      out,
    ),
  );

  if (a) {
    lines.push('');
    const fileRows: Cell[][] = [];
    for (const s of a.sources) {
      for (const f of s.files) {
        const detail =
          f.state === 'refused'
            ? `${f.refusal?.code ?? '?'}: ${f.refusal?.message ?? ''}`
            : f.state === 'no_match'
              ? 'no file matches this pattern'
              : [
                  f.file ? `reading ${f.file}` : '',
                  f.truncations ? `truncated ${f.truncations}x` : '',
                ]
                  .filter(Boolean)
                  .join('; ');
        fileRows.push([
          { text: s.type === 'audit' ? `${s.name} [audit]` : s.name },
          { text: f.path },
          { text: f.state, style: STATE_STYLE[f.state] },
          { text: f.lagBytes !== undefined ? bytes(f.lagBytes) : '-' },
          { text: f.lagSeconds !== undefined ? duration(f.lagSeconds) : '-' },
          { text: ago(f.lastEventTime, now) },
          { text: detail, style: f.state === 'refused' ? 'red' : null },
        ]);
      }
      const lost = s.rotation?.unrecoverable.at(-1);
      if (s.rotation && lost)
        fileRows.push([
          { text: s.name },
          { text: lost.path },
          { text: 'lost', style: 'red' },
          { text: bytes(s.rotation.unrecoverableBytes) },
          { text: '-' },
          { text: ago(lost.at, now) },
          {
            text: `${s.rotation.unrecoverableRanges} range(s) could not be recovered; latest: ${lost.bytes === null ? 'size unknown' : bytes(lost.bytes)}, ${lost.why}`,
            style: 'red',
          },
        ]);
      for (const j of s.journals ?? []) fileRows.push(journalRow(s.name, j, now));
      if (s.listError)
        fileRows.push([
          { text: s.name },
          { text: s.patterns.join(', ') },
          { text: 'list error', style: 'red' },
          { text: '-' },
          { text: '-' },
          { text: '-' },
          { text: s.listError, style: 'red' },
        ]);
    }
    lines.push(
      ...renderTable(
        [
          { header: 'SOURCE', min: 6 },
          { header: 'FILE', min: 12 },
          { header: 'STATE', min: 7 },
          { header: 'LAG', align: 'right', min: 3 },
          { header: 'LAG T', align: 'right' },
          { header: 'LAST EVENT', min: 8 },
          { header: 'DETAIL', min: 8 },
        ],
        fileRows,
        out,
      ),
    );

    lines.push('');
    const sinkRows: Cell[][] = a.sinks.map((k) => {
      const trouble = sinkTrouble(k);
      return [
        { text: k.name },
        { text: `${k.type} ${k.endpoint}` },
        { text: ago(k.lastSuccess, now) },
        { text: String(k.retries), style: k.retryingUntil ? 'yellow' : null },
        { text: `${k.queuedEvents} (${bytes(k.queuedBytes)})` },
        { text: String(k.deadLetteredBatches), style: k.deadLetteredBatches > 0 ? 'red' : null },
        { text: k.lastError ?? '-', style: trouble ? 'red' : k.lastError ? 'dim' : null },
      ];
    });
    lines.push(
      ...renderTable(
        [
          { header: 'SINK' },
          { header: 'ENDPOINT', min: 12 },
          { header: 'LAST SUCCESS', min: 8 },
          { header: 'RETRIES', align: 'right', min: 3 },
          { header: 'QUEUED', min: 6 },
          { header: 'DEAD', align: 'right' },
          { header: 'LAST ERROR', min: 8 },
        ],
        sinkRows,
        out,
      ),
    );
  }
  return lines;
}
