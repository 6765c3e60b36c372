import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { test } from 'node:test';
import {
  checkLlRules,
  freePort,
  malformedRequests,
  publisherArgs,
  sendMalformedRequests,
  startChild,
  WaitTimeoutError,
  waitFor,
  within,
} from '../src/index.js';

test('the synthetic publisher encodes a live-like H.264/AAC stream with TCP_NODELAY, like OBS', () => {
  assert.deepEqual(
    publisherArgs({ url: 'rtmp://h/live/k', width: 320, height: 180, fps: 25, gopSeconds: 2 }),
    [
      '-hide_banner',
      '-nostdin',
      '-loglevel',
      'warning',
      '-re',
      '-f',
      'lavfi',
      '-i',
      'testsrc2=size=320x180:rate=25',
      '-f',
      'lavfi',
      '-i',
      'sine=frequency=440:sample_rate=48000',
      '-c:v',
      'libx264',
      '-preset',
      'ultrafast',
      '-tune',
      'zerolatency',
      '-pix_fmt',
      'yuv420p',
      '-g',
      '50',
      '-c:a',
      'aac',
      '-b:a',
      '64k',
      '-tcp_nodelay',
      '1',
      '-f',
      'flv',
      'rtmp://h/live/k',
    ],
  );
});

test('waitFor returns the first truthy value and names what it waited for on timeout', async () => {
  let n = 0;
  assert.equal(await waitFor(() => (++n >= 3 ? n : undefined), { intervalMs: 1 }), 3);
  await assert.rejects(
    waitFor(() => false, { timeoutMs: 30, what: 'the moon' }),
    (e: unknown) => {
      return e instanceof WaitTimeoutError && /the moon/.test(e.message);
    },
  );
});

test('waitFor retries other errors but fails at once on a failed assertion', async () => {
  let n = 0;
  const value = await waitFor(
    () => {
      if (++n < 3) throw new Error('not started yet');
      return n;
    },
    { intervalMs: 1 },
  );
  assert.equal(value, 3);
  let calls = 0;
  await assert.rejects(
    waitFor(
      () => {
        calls++;
        assert.equal(1, 2, 'a broken rule');
      },
      { timeoutMs: 5000, intervalMs: 1 },
    ),
    (e: unknown) => e instanceof assert.AssertionError && /a broken rule/.test(e.message),
  );
  assert.equal(calls, 1, 'not retried');
});

test('a child process is stopped by its pid, escalating to SIGKILL', async () => {
  const child = startChild({
    name: 'stubborn',
    command: 'sh',
    args: ['-c', 'trap "" TERM; echo up; sleep 30'],
  });
  await waitFor(() => child.tail().includes('up'), { what: 'the child to start' });
  const exit = await within(child.stop('SIGTERM', 100), 5000, 'the child to stop');
  assert.equal(exit.signal, 'SIGKILL');
});

test("checkLlRules: a part under 85 % of PART-TARGET only as its segment's last part (the open segment's newest may be)", () => {
  const playlist = (openParts: string) =>
    [
      '#EXTM3U',
      '#EXT-X-VERSION:9',
      '#EXT-X-TARGETDURATION:1',
      '#EXT-X-PART-INF:PART-TARGET=0.2',
      '#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1,CAN-SKIP-UNTIL=6,HOLD-BACK=3',
      '#EXT-X-MEDIA-SEQUENCE:0',
      '#EXT-X-MAP:URI="1/360p/init.mp4"',
      '#EXT-X-PART:DURATION=0.2,URI="1/360p/part_0.m4s",INDEPENDENT=YES',
      '#EXT-X-PART:DURATION=0.1,URI="1/360p/part_1.m4s"',
      '#EXTINF:0.3,',
      '1/360p/seg_0.m4s',
      '#EXT-X-PART:DURATION=0.2,URI="1/360p/part_2.m4s",INDEPENDENT=YES',
      openParts,
      '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="1/360p/part_9.m4s"',
      '',
    ].join('\n');
  // The newest part, short: maybe the last of its segment (the end of the stream, a keyframe).
  assert.equal(checkLlRules(playlist('#EXT-X-PART:DURATION=0.1,URI="1/360p/part_3.m4s"')).entries.length, 2);
  // A short part that another part of the same segment follows breaks the rule.
  assert.throws(
    () =>
      checkLlRules(
        playlist(
          '#EXT-X-PART:DURATION=0.1,URI="1/360p/part_3.m4s"\n#EXT-X-PART:DURATION=0.2,URI="1/360p/part_4.m4s"',
        ),
      ),
    /part_3.m4s too short/,
  );
});

test('sendMalformedRequests: one connection per request, bounded by its timeout whether the port answers, stays silent or is closed', async () => {
  // A port that reads everything and never answers (as the RTMP port does to HTTP).
  const silent = createServer((socket: Socket) =>
    socket.on('data', () => undefined).on('error', () => undefined),
  );
  const connections: Socket[] = [];
  silent.on('connection', (socket) => connections.push(socket));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const port = (silent.address() as { port: number }).port;
  try {
    const started = Date.now();
    const answers = await sendMalformedRequests(port, '127.0.0.1', { timeoutMs: 300 });
    assert.ok(Date.now() - started < 1000, `took ${Date.now() - started} ms`);
    assert.equal(answers.length, malformedRequests().length);
    assert.equal(connections.length, answers.length, 'each on its own connection');
    for (const a of answers) {
      assert.equal(a.status, null);
      assert.equal(
        a.end,
        a.name.includes('closed mid-headers') || a.name.endsWith('reset') ? 'client' : 'timeout',
      );
    }
  } finally {
    silent.close();
  }
  const refused = await sendMalformedRequests(await freePort());
  assert.ok(refused.every((a) => a.end === 'refused'));
  await assert.rejects(sendMalformedRequests(80, '10.0.0.1'), /not a loopback address/);
});
