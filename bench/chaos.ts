// bench:chaos — the fleet profile (3-node NATS cluster R3, 2 ingests behind a random RTMP balancer,
// 3 two-slot transcoders, 2 packagers and 2 chat pods behind random balancers, 2 supervisors, web) under
// random faults for --minutes: N streams published like OBS (640x360, reconnecting 2 s after a drop),
// viewers polling every stream's HLS and LL-HLS playlists and fetching what they list, two chat members per
// room. A fault every 10-20 s, drawn from a shuffled bag so each kind comes equally often (10 minutes: 8 of
// each): SIGKILL or SIGSTOP (5 s) of a service process (each service in turn; the active worker, the
// leaders half the time), SIGKILL of a NATS node, a publisher's connection cut, malformed requests to every
// listening port. Prints per fault kind the viewer-visible gap (wall time with no new segment / part) and
// the invariants; exits 1 when any invariant broke.
// Targets (issue 23): invariants zero; process faults (kill, stop) segment gap p95 <= 2.0 s; NATS node loss
// gap p95 <= 3 s, no segment lost; publisher reconnect -> first new segment p95 <= 2.0 s.
//   npm run chaos -- [--minutes 10] [--streams 3] [--json out.json]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  ChaosRun,
  FAULT_KINDS,
  type FaultKind,
  formatChaosReport,
  freeLocalPorts,
  startLocalPlatform,
} from '@live/testing';
import { TEST_LADDER } from '../tests/e2e/platform.js';
import { writeJson } from './lib.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    streams: { type: 'string', default: '3' },
    json: { type: 'string' },
  },
});
const minutes = Number(values.minutes);
const streams = Number(values.streams);
if (!(minutes > 0 && minutes <= 120) || !(Number.isInteger(streams) && streams >= 1 && streams <= 6)) {
  console.error('usage: npm run chaos -- [--minutes 0.5..120] [--streams 1..6] [--json out.json]');
  process.exit(2);
}

const log = (line: string) => console.log(`${new Date().toISOString().slice(11, 23)} ${line}`);
const dataDir = mkdtempSync(join(tmpdir(), 'chaos-'));
const platform = await startLocalPlatform({
  profile: 'fleet',
  ports: await freeLocalPorts('fleet'),
  dataDir,
  chatTokenSecret: 'chaos-bench-chat-secret-0123456789abcdef',
  // Two renditions (360p, 240p) from a 640x360 source at x264 ultrafast: three streams and the fleet fit two
  // cores.
  ladder: TEST_LADDER,
  preset: 'ultrafast',
  buildPages: 'if-missing',
  env: { LOG_LEVEL: 'warn' },
  // Services' warnings and the runner's own lines (restarts), not every line of nats-server.
  onLine: (name, line) => {
    if (name === 'local' || /"severity":"(ERROR|CRITICAL)"/.test(line)) log(`${name.padEnd(12)} ${line}`);
  },
});
let exitCode = 0;
try {
  await platform.ready();
  const run = await ChaosRun.start({
    platform,
    streams,
    rendition: '360p',
    source: { width: 640, height: 360 },
    log,
  });
  const end = run.startedAt + minutes * 60_000;
  let bag: FaultKind[] = [];
  while (Date.now() < end) {
    await new Promise((resolve) => setTimeout(resolve, 10_000 + Math.random() * 10_000));
    if (Date.now() >= end) break;
    if (bag.length === 0) bag = [...FAULT_KINDS].sort(() => Math.random() - 0.5);
    await run.inject(bag.pop() as FaultKind);
  }
  // The last fault's effects are part of the run: wait until everything is back before judging.
  await run.recovered(Date.now(), 2, 60_000).catch((error: Error) => log(`not recovered: ${error.message}`));
  const report = await run.finish();
  console.log(`\nchaos: ${minutes} min, ${streams} streams\n${formatChaosReport(report)}`);
  writeJson(values.json, report);
  if (Object.values(report.invariants).some((n) => n > 0)) exitCode = 1;
} finally {
  await platform.stop();
  rmSync(dataDir, { recursive: true, force: true });
}
process.exit(exitCode);
