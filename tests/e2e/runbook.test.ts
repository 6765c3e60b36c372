// The runbook cannot rot: every `nats ...` command in docs/operations.md (code blocks and inline) is run,
// through its NATS-protocol equivalent ($SRV requests, KV and JetStream APIs, subscriptions, requests), in
// the order written, against a running platform with a live stream. The NATS CLI itself is not installed
// here; what it sends is what this test sends. Placeholders (<id>, alice, worker names, a key) are replaced
// by real values. A command this test does not know fails it, so a new runbook entry needs a check here.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { bytes, decode, text } from '@live/bus';
import { buckets, chatTokenReply, createKeyReply, subjects, transcoderHeartbeat } from '@live/contracts';
import { ChatClient, type Child, repoRoot, startPublisher } from '@live/testing';
import { DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { type Platform, startPlatform, waitFor } from './platform.js';

/** The live stream every non-key command is pointed at. */
const LIVE = 'runbook';
/** Commands of the CLI with no platform protocol behind them (CLI-local or system-account reports). */
const CLI_ONLY = new Set(['context', 'server report', 'stream report']);

/** Every `nats ...` command of the runbook: lines of sh blocks and inline code spans, comments removed. */
function runbookCommands(): string[] {
  const doc = readFileSync(join(repoRoot, 'docs/operations.md'), 'utf8');
  const commands: string[] = [];
  const blocks = doc.split(/^```/m);
  blocks.forEach((block, i) => {
    if (i % 2 === 1) {
      for (const line of block.split('\n').slice(1)) {
        const command = line.replace(/\s+#.*$/, '').trim();
        if (command.startsWith('nats ')) commands.push(command);
      }
    } else {
      for (const m of block.matchAll(/`([^`]+)`/g)) {
        const command = (m[1] as string).replace(/\s+/g, ' ').trim();
        if (command.startsWith('nats ')) commands.push(command);
      }
    }
  });
  return commands;
}

/** Shell-like split (single and double quotes). */
function argv(command: string): string[] {
  return [...command.matchAll(/'([^']*)'|"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2] ?? (m[3] as string));
}

let p: Platform;
let publisher: Child;
const state = { streamKey: '', keyId: '', workers: [] as string[], chatSeq: 0 };
let chatter: ChatClient;
before(async () => {
  p = await startPlatform({ workers: 3, chat: true });
  publisher = startPublisher({
    url: p.publishUrl(await p.createKey(LIVE)),
    width: 640,
    height: 360,
    gopSeconds: 1,
  });
  await waitFor(async () => ((await p.media(LIVE, '360p'))?.segments.length ?? 0) >= 2, {
    timeoutMs: 30_000,
    what: 'the stream to be live',
  });
  state.workers = ['w1', 'w2', 'w3'];
  // A message in the live stream's chat room, for the runbook's view and delete commands.
  const minted = decode(
    chatTokenReply,
    (
      await p.nc.request(
        subjects.ctl.chatToken,
        bytes(JSON.stringify({ userId: 'viewer1', name: 'Viewer', rooms: [LIVE] })),
        { timeout: 5000 },
      )
    ).data,
  );
  assert.ok(minted.ok);
  chatter = (await ChatClient.join(p.chatUrl(LIVE), minted.value.token)).client;
  chatter.send({ type: 'send', text: 'first!' });
  state.chatSeq = (await chatter.waitFor((f) => f.type === 'msg', 'the chat message')).seq;
});
after(async () => {
  chatter?.close();
  await publisher?.stop('SIGKILL');
  await p?.stop();
});

async function activeWorker(): Promise<string> {
  const entry = await (await new Kvm(p.nc).open(buckets.assignments)).get(LIVE);
  return (entry?.json<{ workerId: string }>().workerId ?? '') as string;
}

/** Replaces the runbook's placeholders with values of the running platform. */
async function substitute(args: string[]): Promise<string[]> {
  const keys = args[1]?.startsWith('live.ctl.keys');
  const active = await activeWorker();
  // The worker a stream is moved to, and the (idle) worker that gets drained: never the active one.
  const other = state.workers.find((w) => w !== active && w !== 'w3') ?? 'w3';
  return args.map((a) =>
    a
      .replace(/<streamId>|<id>/g, LIVE)
      .replace(/\balice\b/g, keys ? 'alice' : LIVE)
      .replace('live_...', state.streamKey)
      .replace('acf2e0aa7e10', state.keyId)
      .replace(/"toWorker":"[^"]+"/, `"toWorker":"${other}"`)
      .replace(/"workerId":"[^"]+"/, '"workerId":"w3"')
      .replace('<seq>', String(state.chatSeq)),
  );
}

const known = (subject: string) =>
  [
    'live.stream.',
    'live.media.',
    'live.part.',
    'live.ll.watch.',
    'live.health.',
    'live.dlq.',
    'live.alert.',
    'live.chat.',
  ].some((p) => subject.startsWith(p));

async function run(command: string): Promise<string> {
  const raw = argv(command).slice(1);
  const verb = raw.slice(0, 2).join(' ');
  if (CLI_ONLY.has(raw[0] as string) || CLI_ONLY.has(verb)) return 'CLI only';
  const args = await substitute(raw);
  const [group, action] = args;
  const jsm = await jetstreamManager(p.nc);
  const kvm = new Kvm(p.nc);
  if (group === 'micro') {
    const name = args[2];
    const subject = { ls: '$SRV.PING', info: `$SRV.INFO.${name}`, stats: `$SRV.STATS.${name}` }[
      action as string
    ];
    assert.ok(subject, `micro ${action}`);
    const replies = await p.nc.requestMany(subject, bytes(''), { maxWait: 1000 });
    const names = new Set<string>();
    for await (const m of replies) names.add((JSON.parse(text(m.data)) as { name: string }).name);
    if (action === 'ls')
      for (const s of ['live-ingest', 'live-transcoder', 'live-packager', 'live-supervisor', 'live-chat'])
        assert.ok(names.has(s), `${s} in micro ls`);
    else assert.deepEqual([...names], [name], `${command}: answered by ${name}`);
    return `${names.size} service(s)`;
  }
  if (group === 'kv') {
    const kv = await kvm.open(args[2] as string);
    if (action === 'ls') {
      const keys: string[] = [];
      for await (const k of await kv.keys()) keys.push(k);
      assert.ok(keys.length > 0, `${command}: keys`);
      return `${keys.length} key(s)`;
    }
    if (action === 'get') {
      let key = args[3] as string;
      if (key === '<sha256-hex>' || key === '<podId>') for await (const k of await kv.keys()) key = k;
      const entry = await kv.get(key);
      assert.equal(entry?.operation, 'PUT', `${command}: a value`);
      return `${entry?.length} bytes`;
    }
    if (action === 'watch') {
      const watch = await kv.watch();
      for await (const e of watch) {
        watch.stop();
        return `first entry ${e.key}`;
      }
    }
  }
  if (group === 'sub') {
    const subject = args[1] as string;
    assert.ok(known(subject), `${command}: a platform subject`);
    // Subjects with traffic while a stream is live: wait for a message. Others: the subscription works
    // (live.health.local too: only `npm start`'s runner publishes it, and this platform has none).
    const busy =
      /^live\.(health|media|part|ll\.watch)\./.test(subject) && subject !== subjects.localProcesses;
    // Parts (and the origins' watch) flow only while someone watches the stream in LL: the runbook's curl
    // of the LL playlist, done here.
    if (/^live\.(part|ll\.watch)\./.test(subject))
      await fetch(`http://127.0.0.1:${p.originPort}/ll/${LIVE}/360p.m3u8`);
    let got: string | undefined;
    const sub = p.nc.subscribe(subject, {
      max: 1,
      callback: (_e, m) => {
        got = m.subject;
      },
    });
    if (!busy) {
      await p.nc.flush();
      sub.unsubscribe();
      return 'subscribed';
    }
    await waitFor(() => got, { timeoutMs: 5000, what: `${command}: a message` });
    return `got ${got}`;
  }
  if (group === 'stream' && action === 'info') {
    const info = await jsm.streams.info(args[2] as string);
    return `${info.state.messages} messages`;
  }
  if (group === 'stream' && action === 'view') {
    const name = args[2] as string;
    const info = await jsm.streams.info(name);
    const filter = args[args.indexOf('--subject') + 1];
    // A filter outside the stream's subjects is refused by the server: the runbook names real subjects.
    const consumer = await jetstream(p.nc).consumers.get(name, {
      deliver_policy: DeliverPolicy.All,
      ...(args.includes('--subject') ? { filter_subjects: filter } : {}),
    });
    const m = await consumer.next({ expires: 1000 });
    return `${info.state.messages} messages${m ? `, first ${m.subject}` : ''}`;
  }
  if (group === 'req') {
    const subject = args[1] as string;
    const timeoutFlag = args.indexOf('--timeout');
    const timeout = timeoutFlag > 0 ? Number.parseInt(args[timeoutFlag + 1] as string, 10) * 1000 : 5000;
    const reply = await p.nc.request(subject, bytes(args[2] as string), { timeout });
    const error = reply.headers?.get('Nats-Service-Error');
    assert.ok(!error, `${command}: ${error}`);
    if (subject === 'live.ctl.keys.create') {
      const d = decode(createKeyReply, reply.data);
      assert.ok(d.ok);
      state.streamKey = d.value.streamKey;
      state.keyId = d.value.keyId;
    }
    return text(reply.data).slice(0, 120);
  }
  throw new Error(`the runbook test does not know how to run: ${command}`);
}

test('every NATS CLI command in docs/operations.md works against a running platform', async () => {
  const commands = runbookCommands();
  assert.ok(commands.length >= 30, `${commands.length} commands found`);
  for (const command of commands) {
    const outcome = await run(command);
    console.log(`${command}  ->  ${outcome}`);
  }
  // The moves and the drain in the runbook really happened.
  assert.ok(p.events.some((e) => e.type === 'moved' && e.streamId === LIVE));
  const beats: boolean[] = [];
  const sub = p.nc.subscribe('live.health.transcoder.w3', { max: 1 });
  for await (const m of sub) {
    const d = decode(transcoderHeartbeat, m.data);
    beats.push(d.ok && d.value.draining);
  }
  assert.deepEqual(beats, [true], 'the drained worker reports draining');
  // The chat commands took effect: the message was deleted, the room has slow mode and a filter.
  await chatter.waitFor((f) => f.type === 'deleted' && f.target === state.chatSeq, 'the deletion');
  await chatter.waitFor((f) => f.type === 'notice' && f.settings?.words?.includes('spoiler'), 'the filter');
});
