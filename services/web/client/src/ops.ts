// /ops: the fleet at a glance, live from the gateway's /api/fleet event stream: streams with their worker,
// epoch and health; streams waiting for a worker and for how long; workers with free slots; recent failovers
// and moves with their measured times; chat pods with their connections; and the runbook's move and drain as
// buttons (same NATS endpoints).
import type { FleetFailover, FleetSnapshot } from '../../src/shared/api.js';
import { loadConfig, postJson, requireSignIn, subscribe } from './api.js';
import { byId, fill, fmtMs, h, setText } from './dom.js';
import './style.css';

/** When each failover row first appeared on this page (ms since epoch): how fast ops saw it. */
const shownAt = new Map<string, number>();

function result(text: string, ok: boolean): void {
  const el = byId('action-result');
  el.textContent = text;
  el.className = ok ? 'ok' : 'error';
}

function act(path: string, body: unknown, describe: (reply: Record<string, unknown>) => string): void {
  result(`${path.split('/').pop()}: working...`, true);
  postJson<Record<string, unknown>>(path, body)
    .then((reply) => result(describe(reply), true))
    .catch((e: Error) => result(e.message, false));
}

const cell = (...children: (Node | string)[]) => h('td', {}, ...children);
const yes = (b: boolean, yesText: string, noText = '') => (b ? yesText : noText);

function render(f: FleetSnapshot): void {
  setText('updated', new Date(f.at).toLocaleTimeString());
  const waiting = new Map(f.waiting.map((w) => [w.streamId, w]));
  fill(
    byId('streams-body'),
    ...f.streams.map((s) =>
      h(
        'tr',
        { 'data-stream': s.streamId },
        cell(h('a', { href: `/watch/${encodeURIComponent(s.streamId)}` }, s.streamId)),
        cell(`${s.state}${yes(s.sourceStalled, ' (source stalled)')}`),
        cell(
          waiting.has(s.streamId)
            ? `waiting for a worker (${fmtMs(waiting.get(s.streamId)?.waitingMs)})`
            : (s.workerId ?? '-'),
          s.handoverFrom ? ` (moving from ${s.handoverFrom})` : '',
        ),
        cell(String(s.epoch ?? '-')),
        cell(s.renditions.join(' ')),
        cell(
          s.source
            ? `${s.source.kbps} kbit/s, ${s.source.fps} fps, GOP ${fmtMs(s.source.keyframeIntervalMs)}`
            : '-',
        ),
        cell(
          s.encoder
            ? `${s.encoder.state} x${s.encoder.speed.toFixed(2)}, last segment ${fmtMs(s.encoder.lastSegmentAgoMs)} ago`
            : '-',
        ),
        cell(
          h(
            'button',
            {
              type: 'button',
              class: 'move',
              disabled: s.workerId === null,
              onclick: () =>
                act(
                  '/api/ops/move',
                  { streamId: s.streamId },
                  (r) =>
                    `moved ${String(r.streamId)}: ${String(r.fromWorker)} -> ${String(r.toWorker)} in ${fmtMs(r.handoverMs as number)}${r.gapless ? ', gapless' : ''}`,
                ),
            },
            'Move',
          ),
        ),
      ),
    ),
  );
  fill(
    byId('workers-body'),
    ...f.workers.map((w) =>
      h(
        'tr',
        { 'data-worker': w.workerId, class: w.alive ? '' : 'dead' },
        cell(w.workerId),
        cell(w.alive ? (w.draining ? 'draining' : 'alive') : `lost (${fmtMs(w.lastSeenAgoMs)} silent)`),
        cell(`${w.free} / ${w.slots}`),
        cell(w.streams.join(' ') || '-'),
        cell(
          h(
            'button',
            {
              type: 'button',
              class: 'drain',
              disabled: !w.alive || w.draining,
              onclick: () => {
                if (
                  confirm(
                    `Drain ${w.workerId}? Its streams move off it and it takes no new one until restarted.`,
                  )
                )
                  act(
                    '/api/ops/drain',
                    { workerId: w.workerId },
                    (r) =>
                      `draining ${String(r.workerId)}: moving ${(r.streams as string[]).join(', ') || 'no streams'}`,
                  );
              },
            },
            'Drain',
          ),
        ),
      ),
    ),
  );
  // Placed oldest first as slots free up; a long wait means the fleet is short of workers.
  byId('waiting').hidden = f.waiting.length === 0;
  setText('waiting-count', String(f.waiting.length));
  fill(
    byId('waiting-body'),
    ...f.waiting.map((w, i) =>
      h(
        'tr',
        { 'data-waiting': w.streamId, 'data-waiting-ms': String(w.waitingMs) },
        cell(String(i + 1)),
        cell(w.streamId),
        cell(new Date(w.since).toLocaleTimeString()),
        cell(fmtMs(w.waitingMs)),
      ),
    ),
  );
  // The local runner's processes (npm start only): restarts and back-off, as kubectl shows them on GKE.
  byId('processes').hidden = f.processes.length === 0;
  setText('restarts-total', String(f.processes.reduce((n, p) => n + p.restarts, 0)));
  fill(
    byId('processes-body'),
    ...f.processes.map((p) =>
      h(
        'tr',
        {
          'data-process': p.name,
          'data-restarts': String(p.restarts),
          class: p.state === 'running' ? '' : 'bad',
        },
        cell(p.name),
        cell(p.state === 'backoff' ? 'restarting (back-off)' : p.state),
        cell(p.pid === null ? '-' : String(p.pid)),
        cell(fmtMs(p.upMs)),
        cell(String(p.restarts)),
        cell(
          p.lastExit
            ? `${p.lastExit.signal ?? `code ${p.lastExit.code}`}, ${fmtMs(p.lastExit.agoMs)} ago`
            : '-',
        ),
      ),
    ),
  );
  const now = Date.now();
  fill(
    byId('failovers-body'),
    ...f.failovers.map((e: FleetFailover) => {
      if (!shownAt.has(e.id)) shownAt.set(e.id, now);
      return h(
        'tr',
        {
          'data-id': e.id,
          'data-stream': e.streamId,
          'data-epoch': String(e.epoch),
          'data-shown-at': String(shownAt.get(e.id)),
        },
        cell(new Date(e.at).toLocaleTimeString()),
        cell(e.streamId),
        cell(e.type === 'failover' ? `failover (${e.reason})` : `move (${e.reason})`),
        cell(`${e.fromWorker} -> ${e.toWorker}`),
        cell(String(e.epoch)),
        cell(e.detectionMs === null ? '-' : fmtMs(e.detectionMs)),
        cell(fmtMs(e.switchMs)),
        cell(
          e.handoverMs === null
            ? '-'
            : `${fmtMs(e.handoverMs)}${e.gapless === false ? ' (not gapless)' : ''}`,
        ),
      );
    }),
  );
  fill(
    byId('chat-body'),
    ...f.chatPods.map((p) =>
      h(
        'tr',
        { 'data-pod': p.podId, class: p.alive ? '' : 'dead' },
        cell(p.podId),
        cell(`${p.connections} / ${p.capacity}`),
        cell(p.alive ? (p.draining ? 'draining' : 'alive') : 'silent'),
      ),
    ),
  );
  byId('fleet').dataset.at = String(f.at);
}

async function main(): Promise<void> {
  const config = await loadConfig();
  if (!requireSignIn(config, byId('app'))) return;
  byId('app').hidden = false;
  const source = subscribe('/api/fleet', { fleet: (f: FleetSnapshot) => render(f) });
  source.onerror = () => setText('updated', 'reconnecting...');
}

main().catch((e: Error) => result(e.message, false));
