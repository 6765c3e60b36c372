// `npm start`: the whole platform on one machine (libs/testing's local platform: every service its own
// process, restarted when it exits), logs interleaved with a process prefix, a stream key for the demo
// channel, and (with --demo) a synthetic publisher on it. --fleet runs replicas as on GKE. Ctrl-C stops
// everything once, in order.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { bytes, decode, publishCore, text } from '@live/bus';
import { createKeyReply, lifecycleEvent, localProcesses, revokeKeyReply, subjects } from '@live/contracts';
import {
  defaultPorts,
  type LocalPlatform,
  ObsPublisher,
  type Profile,
  repoRoot,
  startLocalPlatform,
} from '@live/testing';
import { connect } from '@nats-io/transport-node';

const { values: args } = parseArgs({
  options: {
    demo: { type: 'boolean', default: false },
    fleet: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (args.help) {
  console.log(
    [
      'npm start [-- --demo] [-- --fleet]   run the platform locally',
      '  --demo    also publish a synthetic test stream on the channel "demo"',
      '  --fleet   replicas as on GKE: a 3-node NATS cluster (R3), 2 ingests, 3 transcoders, 2 packagers,',
      '            2 supervisors, 2 chat pods; RTMP, origin and chat behind random balancers on the same ports',
    ].join('\n'),
  );
  process.exit(0);
}

const profile: Profile = args.fleet ? 'fleet' : 'single';
const ports = defaultPorts(profile);
// The fleet keeps its own NATS stores and media: its streams and buckets are R3, the single server's R1.
const dataDir = join(repoRoot, '.data', ...(args.fleet ? ['fleet'] : []));
let platform: LocalPlatform | undefined;
let demo: ObsPublisher | undefined;

const colors: Record<string, string> = {
  nats: '35',
  ingest: '36',
  supervisor: '34',
  packager: '94',
  transcoder: '96',
  chat: '93',
  web: '92',
  demo: '33',
  local: '32',
};
const SEVERITY_COLOR: Record<string, string> = { WARNING: '33', ERROR: '31', CRITICAL: '31' };
function print(name: string, line: string): void {
  let body = line;
  try {
    const {
      severity = 'INFO',
      message = '',
      time: _t,
      service: _s,
      ...rest
    } = JSON.parse(line) as Record<string, unknown>;
    const fields = Object.entries(rest)
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
      .join(' ');
    const sev = String(severity);
    body = `\x1b[${SEVERITY_COLOR[sev] ?? '0'}m${sev.padEnd(7)}\x1b[0m ${String(message)} \x1b[2m${fields}\x1b[0m`;
  } catch {
    // not JSON (nats-server, ffmpeg): print as is
  }
  const time = new Date().toISOString().slice(11, 19);
  const color = colors[name.replace(/-\d+$/, '')] ?? '0';
  console.log(`${time} \x1b[${color}m${name.padEnd(12)}\x1b[0m ${body}`);
}

/** The chat's token secret, kept in .data so tokens survive a restart of the local platform. */
function localChatSecret(): string {
  mkdirSync(dataDir, { recursive: true });
  const path = join(dataDir, 'chat-token-secret');
  if (!existsSync(path)) writeFileSync(path, randomBytes(32).toString('hex'), { mode: 0o600 });
  return readFileSync(path, 'utf8').trim();
}

// Ctrl-C (SIGINT) or SIGTERM: every service is stopped once, gracefully, in order. The services run in
// process groups of their own, so the terminal's SIGINT reaches only this runner; a second Ctrl-C while
// stopping is ignored (the runner SIGKILLs what has not stopped after its grace).
let stopping = false;
async function stop(code = 0): Promise<void> {
  if (stopping) return;
  stopping = true;
  await demo?.stop();
  await platform?.stop();
  process.exit(code);
}
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());

async function main(): Promise<void> {
  platform = await startLocalPlatform({
    profile,
    ports,
    dataDir,
    chatTokenSecret: localChatSecret(),
    onLine: print,
  });
  await platform.ready();
  const nc = await connect({ servers: platform.natsUrls, name: 'local launcher' });

  // A fresh key for the demo channel every start: the old ones are revoked, the new one shown once.
  const revoked = decode(
    revokeKeyReply,
    (await nc.request(subjects.ctl.keysRevoke, bytes('{"streamId":"demo"}'), { timeout: 5000 })).data,
  );
  if (!revoked.ok) throw new Error('could not reset the demo key');
  const reply = await nc.request(subjects.ctl.keysCreate, bytes('{"streamId":"demo","label":"npm start"}'), {
    timeout: 5000,
  });
  const created = decode(createKeyReply, reply.data);
  if (!created.ok) throw new Error(`could not create the demo key: ${text(reply.data)}`);

  // The process table, every second, for the ops page (restarts, back-off): what kubectl shows on GKE.
  const publishProcesses = () =>
    publishCore(nc, localProcesses, subjects.localProcesses, {
      profile,
      at: Date.now(),
      processes: (platform as LocalPlatform).processes.map((p) => ({ ...p.process.status(), kind: p.kind })),
    });
  publishProcesses();
  setInterval(publishProcesses, 1000).unref();

  // Show the lifecycle as it happens, so a newcomer sees the platform react.
  nc.subscribe(subjects.allStreamEvents, {
    callback: (_e, m) => {
      const d = decode(lifecycleEvent, m.data);
      if (!d.ok) return;
      const e = d.value;
      const detail =
        e.type === 'started'
          ? `${e.source.video.width}x${e.source.video.height}@${e.source.video.fps} ${e.source.video.profile}`
          : 'reason' in e
            ? e.reason
            : '';
      print('local', `event: ${e.streamId} ${e.type} ${detail}`);
    },
  });

  if (args.demo) {
    // Like OBS: when its connection drops (an ingest killed), it publishes again 2 s later, through the
    // balancer in the fleet profile.
    demo = new ObsPublisher(`rtmp://127.0.0.1:${ports.rtmp}/live/${created.value.streamKey}`, {
      width: 640,
      height: 360,
    });
  }

  console.log(`
  \x1b[1mLive platform is running.\x1b[0m
    Stream from OBS:  Settings > Stream > Service "Custom"
                      Server      rtmp://localhost:${ports.rtmp}/live
                      Stream key  ${created.value.streamKey}   (channel "demo"; shown once, new at every start)
    New keys:         npm run keys -- create <channel>
    Watch:            http://localhost:${ports.web}/watch/<channel>   (demo: http://localhost:${ports.web}/watch/demo; ?ll=0 for plain HLS)
    Studio:           http://localhost:${ports.web}/studio   (channels, stream keys, source health)
    Ops:              http://localhost:${ports.web}/ops      (streams, workers, failovers, chat pods; move and drain)
    HLS:              http://localhost:${ports.web}/hls/<channel>/master.m3u8   (the packager's origin, ${ports.origin})
    LL-HLS:           http://localhost:${ports.web}/ll/<channel>/master.m3u8    (low latency, ~1.2 s behind; the watch page's default)
    Chat:             ws://localhost:${ports.chat}/chat/<channel>   guest token: curl -X POST localhost:${ports.web}/api/chat/token -H 'content-type: application/json' -d '{"room":"demo"}'
                      moderator token: npm run chat-token -- --user me --role streamer --room demo
    Events:           nats sub 'live.>' --server ${platform.natsUrls[0]}
    NATS:             ${platform.natsUrls.join(',')}  (monitoring ${ports.nats.map((n) => `http://localhost:${n.monitor}`).join(' ')})
    Ops endpoints:    /healthz /readyz /metrics on ${platform.processes
      .filter((p) => p.kind !== 'nats')
      .map((p) => `${p.name} ${p.opsPort}`)
      .join(', ')}
    Processes:        ${profile === 'fleet' ? 'the fleet profile: replicas behind random balancers' : 'one of each'}; a process that exits is restarted (1 s back-off, doubling to 30 s)
  ${args.demo ? 'A synthetic test stream is publishing on "demo".' : 'Tip: npm start -- --demo publishes a test stream on "demo".'}
  Ctrl-C stops everything.
`);
}

main().catch((error: unknown) => {
  print('local', `failed: ${(error as Error).message}`);
  void stop(1);
});
