// `npm start`: the whole platform on one machine. A nats-server child with JetStream in .data/nats, then
// every service as its own process (as in production), their logs interleaved with a service prefix, a
// stream key for the demo channel, and (with --demo) a synthetic publisher on it. Ctrl-C stops everything
// in reverse order.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { bytes, decode, text } from '@live/bus';
import { createKeyReply, lifecycleEvent, revokeKeyReply, subjects } from '@live/contracts';
import {
  type Child,
  natsServerBinary,
  natsServerEnv,
  repoRoot,
  serviceCommand,
  startChild,
  startPublisher,
  waitFor,
} from '@live/testing';
import { connect } from '@nats-io/transport-node';

const { values: args } = parseArgs({
  options: {
    demo: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (args.help) {
  console.log(
    'npm start [-- --demo]   run the platform locally; --demo also publishes a test stream as "demo"',
  );
  process.exit(0);
}

// Local defaults (design.md): RTMP 1935, NATS 4222 (monitoring 8222), pages and HLS on 8080 (the web service,
// which proxies /hls/ to the packager's origin on 8090), ops ports 91xx.
const ports = {
  rtmp: 1935,
  nats: 4222,
  natsMonitor: 8222,
  web: 8080,
  webOps: 9106,
  origin: 8090,
  ingestOps: 9101,
  transcoderOps: [9102, 9112],
  packagerOps: 9103,
  supervisorOps: 9104,
  chat: 8081,
  chatOps: 9105,
};
const dataDir = join(repoRoot, '.data');
const natsUrl = `nats://127.0.0.1:${ports.nats}`;
const children: Child[] = [];

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
  console.log(`${time} \x1b[${colors[name] ?? '0'}m${name.padEnd(10)}\x1b[0m ${body}`);
}

function spawnService(name: string, env: Record<string, string>, label = name): Child {
  const { command, args: argv } = serviceCommand(name);
  const child = startChild({
    name: label,
    command,
    args: argv,
    cwd: repoRoot,
    env: {
      ...process.env,
      NATS_URL: natsUrl,
      STORAGE: 'local',
      STORAGE_LOCAL_DIR: join(dataDir, 'media'),
      ...env,
    },
    onLine: (line) => print(name, line),
  });
  children.push(child);
  void child.exited.then((exit) => {
    if (!stopping) {
      print('local', `${name} exited (${exit.code ?? exit.signal}); stopping everything`);
      void stop(1);
    }
  });
  return child;
}

async function ready(name: string, opsPort: number, child: Child): Promise<void> {
  await waitFor(
    async () => {
      if (child.hasExited()) throw new Error(`${name} exited`);
      return (await fetch(`http://127.0.0.1:${opsPort}/readyz`)).ok;
    },
    { timeoutMs: 60_000, what: `${name} to be ready` },
  );
}

/** The chat's token secret, kept in .data so tokens survive a restart of the local platform. */
function localChatSecret(): string {
  const path = join(dataDir, 'chat-token-secret');
  if (!existsSync(path)) writeFileSync(path, randomBytes(32).toString('hex'), { mode: 0o600 });
  return readFileSync(path, 'utf8').trim();
}

let stopping = false;
async function stop(code = 0): Promise<void> {
  if (stopping) return;
  stopping = true;
  print('local', 'stopping...');
  for (const child of [...children].reverse()) await child.stop('SIGTERM', 8000);
  process.exit(code);
}
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());

async function main(): Promise<void> {
  mkdirSync(join(dataDir, 'nats'), { recursive: true });
  print('local', `starting nats-server with JetStream (store ${join(dataDir, 'nats')})`);
  const nats = startChild({
    name: 'nats',
    command: natsServerBinary(),
    env: natsServerEnv(),
    args: [
      '-a',
      '127.0.0.1',
      '-p',
      String(ports.nats),
      '-m',
      String(ports.natsMonitor),
      '-js',
      '-sd',
      join(dataDir, 'nats'),
      '--server_name',
      'local',
    ],
    onLine: (line) => print('nats', line),
  });
  children.push(nats);
  await waitFor(
    async () => {
      if (nats.hasExited())
        throw new Error(`nats-server exited (is port ${ports.nats} in use by another nats-server?)`);
      return (await fetch(`http://127.0.0.1:${ports.natsMonitor}/healthz`)).ok;
    },
    { timeoutMs: 10_000, what: 'nats-server' },
  );

  const ingest = spawnService('ingest', {
    INGEST_RTMP_PORT: String(ports.rtmp),
    INGEST_OPS_PORT: String(ports.ingestOps),
  });
  await ready('ingest', ports.ingestOps, ingest);
  // One machine runs everything: a ladder capped at 480p keeps a laptop cool and still shows ABR
  // (production uses the 1080p/720p/480p/360p presets).
  const supervisor = spawnService('supervisor', {
    SUPERVISOR_OPS_PORT: String(ports.supervisorOps),
    SUPERVISOR_LADDER: JSON.stringify([
      { name: '480p', width: 854, height: 480, fps: 30, videoKbps: 1400, audioKbps: 96 },
      { name: '360p', width: 640, height: 360, fps: 30, videoKbps: 800, audioKbps: 96 },
      { name: '240p', width: 426, height: 240, fps: 30, videoKbps: 400, audioKbps: 64 },
    ]),
  });
  const packager = spawnService('packager', {
    PACKAGER_OPS_PORT: String(ports.packagerOps),
    PACKAGER_HTTP_PORT: String(ports.origin),
    PACKAGER_HTTP_BIND: '127.0.0.1',
  });
  // Two workers with one slot each: one transcodes, the other is the warm standby for failover.
  const workers = ports.transcoderOps.map((opsPort, i) =>
    spawnService(
      'transcoder',
      {
        TRANSCODER_WORKER_ID: `local-${i + 1}`,
        TRANSCODER_OPS_PORT: String(opsPort),
        TRANSCODER_WORK_DIR: join(dataDir, 'transcode', `local-${i + 1}`),
        // A cheaper x264 preset than production's veryfast: the whole platform shares this machine.
        TRANSCODER_PRESET: 'superfast',
      },
      `transcoder-${i + 1}`,
    ),
  );
  const chat = spawnService('chat', {
    CHAT_PORT: String(ports.chat),
    CHAT_OPS_PORT: String(ports.chatOps),
    CHAT_TOKEN_SECRET: localChatSecret(),
    // Local mode only: guest tokens from the chat itself (POST :8081/api/chat/token), for scripts and tools;
    // the watch page gets its guest tokens from the web gateway.
    CHAT_GUEST_TOKENS: 'true',
  });
  // The pages are a Vite build (a few seconds); the web service serves what it finds in dist/public.
  print('local', 'building the web pages (vite build)');
  const built = spawnSync('npm', ['run', 'build:pages', '-w', '@live/web', '--silent'], {
    cwd: repoRoot,
    stdio: 'inherit',
  });
  if (built.status !== 0) throw new Error('vite build of services/web failed');
  const web = spawnService('web', {
    WEB_PORT: String(ports.web),
    WEB_OPS_PORT: String(ports.webOps),
    // Local mode, explicitly: studio and ops without a token, guest chat tokens, HLS through this port.
    WEB_AUTH: 'none',
    WEB_GUEST_CHAT: 'true',
    WEB_HLS_UPSTREAM: `http://127.0.0.1:${ports.origin}`,
    WEB_CHAT_URL: `ws://localhost:${ports.chat}/chat`,
    WEB_RTMP_URL: `rtmp://localhost:${ports.rtmp}/live`,
  });
  await Promise.all([
    ready('web', ports.webOps, web),
    ready('chat', ports.chatOps, chat),
    ready('supervisor', ports.supervisorOps, supervisor),
    ready('packager', ports.packagerOps, packager),
    ...workers.map((w, i) => ready(`transcoder-${i + 1}`, ports.transcoderOps[i] as number, w)),
  ]);

  // A fresh key for the demo channel every start: the old ones are revoked, the new one shown once.
  const nc = await connect({ servers: [natsUrl], name: 'local launcher' });
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
    const demo = startPublisher({ url: `rtmp://127.0.0.1:${ports.rtmp}/live/${created.value.streamKey}` });
    children.push(demo);
    void demo.exited.then(
      () => !stopping && print('demo', `publisher exited: ${demo.tail().slice(-3).join(' | ')}`),
    );
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
    Events:           nats sub 'live.>' --server ${natsUrl}
    NATS:             ${natsUrl}  (monitoring http://localhost:${ports.natsMonitor})
    Ops endpoints:    /healthz /readyz /metrics on ports ingest ${ports.ingestOps}, transcoders ${ports.transcoderOps.join('/')}, packager ${ports.packagerOps}, supervisor ${ports.supervisorOps}, chat ${ports.chatOps}, web ${ports.webOps}
  ${args.demo ? 'A synthetic test stream is publishing on "demo".' : 'Tip: npm start -- --demo publishes a test stream on "demo".'}
  Ctrl-C stops everything.
`);
}

main().catch((error: unknown) => {
  print('local', `failed: ${(error as Error).message}`);
  void stop(1);
});
