// The short chaos test: the fleet profile (three NATS nodes, replicas behind random balancers, every process
// restarted when it dies) with one stream published like OBS, watched in HLS and LL-HLS, and chat in use;
// one fault of each kind, each followed by waiting for the platform to move on; then the invariants the
// platform promises must all hold. `npm run chaos` is the long, random version (a benchmark).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  type ChaosReport,
  ChaosRun,
  formatChaosReport,
  freeLocalPorts,
  INVARIANTS,
  type LocalPlatform,
  startLocalPlatform,
} from '@live/testing';
import { CHAT_TEST_SECRET, TEST_LADDER } from './platform.js';

let platform: LocalPlatform;
let dataDir: string;
const lines: string[] = [];

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'chaos-'));
  platform = await startLocalPlatform({
    profile: 'fleet',
    ports: await freeLocalPorts('fleet'),
    dataDir,
    chatTokenSecret: CHAT_TEST_SECRET,
    ladder: TEST_LADDER,
    preset: 'ultrafast',
    buildPages: 'if-missing',
    env: { LOG_LEVEL: 'warn' },
    onLine: (name, line) => {
      lines.push(`${name} ${line}`);
      if (lines.length > 300) lines.shift();
    },
  });
  await platform.ready();
});

after(async () => {
  await platform?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

test('one fault of each kind on the fleet: no ENDLIST, nothing backwards or lost, no chat message lost, every process back', async (t) => {
  const run = await ChaosRun.start({
    platform,
    streams: 1,
    rendition: '360p',
    source: { width: 640, height: 360 },
    log: (line) => lines.push(line),
  });
  // The faults the platform exists to survive: the active worker killed, the supervisor leader frozen past
  // its lease, a NATS node lost, the streamer's connection cut (back through the balancer to either ingest),
  // and garbage sent to every listening port. (A frozen packager leader can still lose a segment from its
  // playlists: docs/architecture.md, the chaos figures; `npm run chaos` keeps trying it.)
  const faults = [
    () => run.inject('kill', 'transcoder'),
    () => run.inject('stop', 'supervisor', true),
    () => run.inject('nats'),
    () => run.inject('publisher'),
    () => run.inject('malformed'),
  ];
  for (const inject of faults) {
    const fault = await inject();
    await run.recovered(fault.at);
  }
  const report: ChaosReport = await run.finish();
  t.diagnostic(formatChaosReport(report));
  const context = `${formatChaosReport(report)}\n--- last lines ---\n${lines.slice(-60).join('\n')}`;
  for (const invariant of INVARIANTS)
    assert.equal(report.invariants[invariant], 0, `${invariant} broken\n${context}`);
  for (const kind of ['kill', 'stop', 'nats', 'publisher', 'malformed'] as const)
    assert.equal(report.faults[kind].count, 1, kind);
  // The killed worker and NATS node were restarted by the runner, as Kubernetes restarts a container.
  const killed = [report.faults.kill.targets[0], report.faults.nats.targets[0]];
  for (const name of killed)
    assert.ok((report.restarts[name as string] ?? 0) >= 1, `${name} restarted\n${context}`);
  // The streamer came back through the balancer and the same playlist carried on.
  assert.ok(
    report.faults.publisher.reconnectToSegmentMs?.max !== null,
    `a new epoch listed after the reconnect\n${context}`,
  );
  assert.ok((report.chat['chaos-1']?.acked ?? 0) > 0, 'chat messages were acknowledged');
});
