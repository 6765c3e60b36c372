// The NATS users and permissions of deploy/nats/values.yaml, on a real nats-server configured with exactly
// those accounts: the whole platform runs with one user per service (a stream goes live, an operator moves
// it), and each service is refused outside its permissions.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { bytes, connectBus, decode } from '@live/bus';
import { CHAT_CLOSE, chatTokenReply, streamMoveReply, subjects } from '@live/contracts';
import { createLogger } from '@live/log';
import { ChatClient, checkLlRules, repoRoot, startPublisher, within } from '@live/testing';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import { parse } from 'yaml';
import { type Platform, startPlatform, WEB_TEST_ADMIN_TOKEN, waitFor } from '../../tests/e2e/platform.js';

const logger = createLogger({ service: 'permissions-test', level: 'fatal' });
const values = parse(readFileSync(join(repoRoot, 'deploy/nats/values.yaml'), 'utf8'));
const SERVICES = ['ingest', 'transcoder', 'packager', 'supervisor', 'chat', 'web'] as const;
const passwords: Record<string, string> = {};

/** The chart's `config.merge` accounts, with each `$<USER>_PASSWORD` replaced by a generated password. */
function serverConfig(): Record<string, unknown> {
  const merge = values.config.merge as {
    accounts: Record<string, { users: { password: string }[] }>;
    system_account: string;
  };
  const accounts = structuredClone(merge.accounts);
  for (const account of Object.values(accounts)) {
    for (const user of account.users) {
      const variable = /^\$([A-Z]+)_PASSWORD$/.exec(user.password)?.[1];
      assert.ok(variable, `password of a user is a $<NAME>_PASSWORD reference, got ${user.password}`);
      passwords[variable.toLowerCase()] = randomBytes(12).toString('hex');
      user.password = passwords[variable.toLowerCase()] as string;
    }
  }
  return { accounts, system_account: merge.system_account };
}

let p: Platform;
const connections: NatsConnection[] = [];
before(async () => {
  const config = serverConfig();
  p = await startPlatform({
    workers: 2,
    chat: true,
    web: true,
    natsConfig: config,
    testUser: { user: 'operator', pass: passwords.operator as string },
    serviceEnv: Object.fromEntries(
      SERVICES.map((s) => [s, { NATS_USER: s, NATS_PASSWORD: passwords[s] as string }]),
    ),
  });
});
after(async () => {
  await Promise.all(connections.map((c) => c.close()));
  await p?.stop();
});

async function connectAs(user: string): Promise<NatsConnection> {
  const nc = await connectBus({
    servers: [p.nats.url],
    name: `as-${user}`,
    logger,
    user,
    pass: passwords[user],
  });
  connections.push(nc);
  return nc;
}

/** Publishes and waits for the server's permissions violation for that subject. */
async function publishRefused(nc: NatsConnection, subject: string): Promise<boolean> {
  const errors: string[] = [];
  const watching = (async () => {
    for await (const s of nc.status()) if (s.type === 'error') errors.push(String(s.error));
  })();
  nc.publish(subject, bytes('{}'));
  await nc.flush();
  const refused = await waitFor(() => errors.find((e) => e.includes(subject)), {
    timeoutMs: 3000,
    what: `a permissions violation for ${subject}`,
  }).catch(() => null);
  void watching;
  return refused !== null && /permissions violation/i.test(refused);
}

test('the platform does its job with one NATS user per service: live, and an operator move', async () => {
  const publisher = startPublisher({
    url: p.publishUrl(await p.createKey('perm')),
    width: 640,
    height: 360,
    gopSeconds: 1,
  });
  try {
    await waitFor(async () => ((await p.media('perm', '360p'))?.segments.length ?? 0) >= 3, {
      timeoutMs: 30_000,
      what: 'the stream to be live with per-service users',
    });
    // LL-HLS as the transcoder and packager users: the worker announces its parts (live.part.<id>), the
    // origin hears them and the segment events (core subscriptions), fetches the parts and lists them.
    const llParts = async () => {
      const text = await p.fetchText('/ll/perm/360p.m3u8');
      return text === null ? [] : checkLlRules(text).entries.flatMap((e) => e.parts);
    };
    await waitFor(async () => (await llParts()).length >= 5, {
      timeoutMs: 15_000,
      what: 'LL-HLS parts listed by the origin with per-service users',
    });
    const [part] = await llParts();
    const partBytes = await fetch(`http://127.0.0.1:${p.originPort}/ll/perm/${part?.uri}`);
    assert.equal(partBytes.status, 200, 'a listed part is served');
    const reply = await p.nc.request(subjects.ctl.streamMove, bytes('{"streamId":"perm"}'), {
      timeout: 20_000,
    });
    const moved = decode(streamMoveReply, reply.data);
    assert.ok(moved.ok && moved.value.gapless, 'the operator moved the stream');
    // Chat as the chat user: join, send, and an operator's moderation (the operator user) enforced.
    const minted = decode(
      chatTokenReply,
      (
        await p.nc.request(
          subjects.ctl.chatToken,
          bytes(JSON.stringify({ userId: 'v1', name: 'V', rooms: ['perm'] })),
          { timeout: 5000 },
        )
      ).data,
    );
    assert.ok(minted.ok, 'the operator mints a chat token');
    const { client } = await ChatClient.join(p.chatUrl('perm'), minted.value.token);
    client.send({ type: 'send', text: 'hello', cid: 'c' });
    await client.waitFor((f) => f.type === 'ack' && f.cid === 'c', 'the message stored');
    await p.nc.request(subjects.ctl.chatBan, bytes('{"room":"perm","userId":"v1"}'), { timeout: 5000 });
    assert.equal((await client.closed).code, CHAT_CLOSE.banned, 'the ban enforced');
    // The web gateway as the web user: the fleet it shows comes from the consumer, the watches and the
    // heartbeats, and a page's guest chat token from the chat's operator endpoint.
    const admin = { authorization: `Bearer ${WEB_TEST_ADMIN_TOKEN}` };
    const guest = await fetch(`${p.webUrl}/api/chat/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"room":"perm"}',
    });
    assert.equal(guest.status, 200, 'the web gateway mints a guest chat token');
    const key = await fetch(`${p.webUrl}/api/studio/keys`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...admin },
      body: '{"streamId":"perm-web"}',
    });
    assert.equal(key.status, 201, 'the web gateway creates a stream key');
    const fleet = await fetch(`${p.webUrl}/api/fleet`, { headers: admin });
    const reader = fleet.body?.getReader();
    let seen = '';
    while (!seen.includes('"streamId":"perm","state":"live"')) {
      const chunk = await reader?.read();
      if (!chunk || chunk.done) break;
      seen += new TextDecoder().decode(chunk.value);
    }
    await reader?.cancel();
    assert.match(
      seen,
      /"streamId":"perm","state":"live","sourceStalled":false,"workerId":"w\d"/,
      'the fleet',
    );
    const violations = p.logs.filter((l) => /permissions violation/i.test(JSON.stringify(l.line)));
    assert.deepEqual(violations, [], 'no service hit a permissions violation while doing its job');
  } finally {
    await publisher.stop('SIGKILL');
  }
});

test('each service is refused outside its permissions', async () => {
  const ingest = await connectAs('ingest');
  assert.ok(await publishRefused(ingest, 'live.media.perm.segment'), 'ingest cannot announce segments');
  assert.ok(await publishRefused(ingest, '$KV.live-assignments.perm'), 'ingest cannot assign');
  const transcoder = await connectAs('transcoder');
  assert.ok(await publishRefused(transcoder, '$KV.live-assignments.perm'), 'a worker cannot assign itself');
  assert.ok(await publishRefused(transcoder, '$KV.stream-keys.x'), 'a worker cannot create stream keys');
  assert.ok(await publishRefused(transcoder, 'live.ctl.stream.move'), 'a worker cannot move streams');
  const packager = await connectAs('packager');
  assert.ok(await publishRefused(packager, 'live.stream.perm.ended'), 'the packager cannot end streams');
  // LL-HLS part events: a worker announces, every packager hears (core NATS); nobody else announces.
  const heard = packager.subscribe(subjects.allParts, { max: 1 });
  await packager.flush();
  transcoder.publish(subjects.mediaPart('perm-probe'), bytes('{}'));
  const received = await within(
    (async () => {
      for await (const m of heard) return m.subject;
      return null;
    })(),
    3000,
    "the packager to hear the worker's part event",
  );
  assert.equal(
    received,
    subjects.mediaPart('perm-probe'),
    'a worker announces parts, the packager hears them',
  );
  assert.ok(await publishRefused(packager, subjects.mediaPart('perm')), 'the packager cannot announce parts');
  const supervisor = await connectAs('supervisor');
  assert.ok(await publishRefused(supervisor, '$KV.stream-keys.x'), 'the supervisor cannot create keys');
  assert.ok(
    await publishRefused(supervisor, 'live.media.perm.segment'),
    'the supervisor cannot add segments',
  );
  const chat = await connectAs('chat');
  assert.ok(await publishRefused(chat, 'live.stream.perm.ended'), 'chat cannot end streams');
  assert.ok(await publishRefused(chat, '$KV.live-assignments.perm'), 'chat cannot assign');
  assert.ok(await publishRefused(chat, subjects.mediaPart('perm')), 'chat cannot announce LL-HLS parts');
  assert.ok(await publishRefused(ingest, 'live.chat.room.perm'), 'ingest cannot write chat messages');
  const web = await connectAs('web');
  assert.ok(await publishRefused(web, 'live.stream.perm.ended'), 'the web gateway cannot end streams');
  assert.ok(await publishRefused(web, '$KV.live-assignments.perm'), 'the web gateway cannot assign');
  assert.ok(
    await publishRefused(web, subjects.mediaPart('perm')),
    'the web gateway cannot announce LL-HLS parts',
  );
  assert.ok(await publishRefused(web, 'live.chat.room.perm'), 'the web gateway cannot write chat messages');
  assert.ok(await publishRefused(web, 'live.ctl.chat.ban'), 'the web gateway cannot ban (moderators do)');
  for (const service of SERVICES) {
    const nc = await connectAs(service);
    assert.ok(
      await publishRefused(nc, '$JS.API.STREAM.DELETE.LIVE_EVENTS'),
      `${service} cannot delete a stream`,
    );
  }
  // And the refusals changed nothing.
  const jsm = await jetstreamManager(p.nc);
  assert.ok(await jsm.streams.info('LIVE_EVENTS'));
  const assignments = await new Kvm(p.nc).open('live-assignments');
  assert.equal(await assignments.get('x'), null);
});
