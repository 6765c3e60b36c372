// /studio: the streamer's page. Create a channel and get its RTMP URL and stream key (shown once, with copy
// and rotate), its live status, and the source's health as the ingest sees it, with warnings when the
// encoder's settings will hurt viewers (long keyframe interval, bitrate above what the platform takes).
import type {
  KeyReply,
  LifecycleEventView,
  PageConfig,
  SourceHealth,
  StreamState,
} from '../../src/shared/api.js';
import { loadConfig, postJson, requireSignIn, subscribe } from './api.js';
import { LiveChart } from './chart.js';
import { byId, fill, fmtMs, h, setText } from './dom.js';
import './style.css';

const STREAM_ID = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const REMEMBERED = 'studio.channel';

let events: EventSource | null = null;
let chart: LiveChart | null = null;

function copyButton(id: string, value: () => string): HTMLButtonElement {
  const button = h('button', { type: 'button', id, class: 'copy' }, 'Copy');
  button.addEventListener('click', () => {
    navigator.clipboard
      .writeText(value())
      .then(() => {
        button.textContent = 'Copied';
        window.setTimeout(() => {
          button.textContent = 'Copy';
        }, 1500);
      })
      .catch(() => {
        button.textContent = 'Select and copy by hand';
      });
  });
  return button;
}

function showKey(reply: KeyReply): void {
  const card = byId('key-card');
  card.hidden = false;
  fill(
    card,
    h('h2', {}, `Channel ${reply.streamId}`),
    h(
      'dl',
      {},
      h('dt', {}, 'Server (OBS: Settings > Stream > Custom)'),
      h(
        'dd',
        {},
        h('code', { id: 'rtmp-url' }, reply.rtmpUrl),
        ' ',
        copyButton('copy-url', () => reply.rtmpUrl),
      ),
      h('dt', {}, 'Stream key'),
      h(
        'dd',
        {},
        h('code', { id: 'stream-key' }, reply.streamKey),
        ' ',
        copyButton('copy-key', () => reply.streamKey),
      ),
    ),
    h(
      'p',
      { class: 'warn' },
      'Shown once: copy it into OBS now. It is never shown again; if it is lost or leaked, rotate it.',
    ),
    reply.revoked > 0
      ? h('p', {}, `${reply.revoked} old key(s) revoked; a live publisher using one was disconnected.`)
      : null,
    h('button', { type: 'button', id: 'hide-key', onclick: () => hideKey() }, 'Done, hide the key'),
  );
}

function hideKey(): void {
  const card = byId('key-card');
  card.replaceChildren();
  card.hidden = true;
}

function watchChannel(streamId: string, config: PageConfig): void {
  localStorage.setItem(REMEMBERED, streamId);
  events?.close();
  setText('channel-name', streamId);
  byId('channel-panel').hidden = false;
  const watchLink = byId<HTMLAnchorElement>('watch-link');
  watchLink.href = `/watch/${encodeURIComponent(streamId)}`;
  chart = new LiveChart(byId<HTMLCanvasElement>('health-chart'), [
    { name: 'bitrate', color: '#4da3ff', unit: 'kbit/s' },
    { name: 'fps', color: '#5fd38d', unit: 'fps' },
  ]);
  const warnings = byId('warnings');
  events = subscribe(`/api/studio/events?stream=${encodeURIComponent(streamId)}`, {
    state: (s: StreamState) => {
      const status = byId('status');
      status.dataset.state = s.state;
      status.textContent =
        s.state === 'live'
          ? s.sourceStalled
            ? 'LIVE - your connection dropped'
            : 'LIVE'
          : s.state === 'ended'
            ? 'Ended'
            : 'Offline';
    },
    lifecycle: (e: LifecycleEventView) => {
      const line = e.type === 'rejected' || e.type === 'ended' ? `${e.type}: ${e.reason}` : e.type;
      setText('last-event', `${new Date(e.at).toLocaleTimeString()} ${line}`);
    },
    health: (hl: SourceHealth) => {
      chart?.push([hl.kbps, hl.fps]);
      setText('kbps', `${hl.kbps} kbit/s`);
      setText('fps', `${hl.fps.toFixed(0)}`);
      setText('keyframe', fmtMs(hl.keyframeIntervalMs));
      const list: string[] = [];
      if (hl.keyframeIntervalMs !== null && hl.keyframeIntervalMs > config.limits.maxKeyframeMs * 1.1)
        list.push(
          `Keyframe interval is ${fmtMs(hl.keyframeIntervalMs)}: set it to ${config.limits.maxKeyframeMs / 1000} s in OBS (Settings > Output > Keyframe Interval). Longer makes viewers wait to start and failover slower.`,
        );
      if (hl.kbps > config.limits.maxSourceKbps)
        list.push(
          `Bitrate is ${hl.kbps} kbit/s, above the ${config.limits.maxSourceKbps} kbit/s this platform takes in: lower it in OBS (Settings > Output > Bitrate).`,
        );
      if (hl.state === 'live' && hl.fps > 0 && hl.fps < 20)
        list.push(
          `Only ${hl.fps.toFixed(0)} frames per second arrive: your encoder or uplink is overloaded.`,
        );
      if (hl.state !== 'live')
        list.push(`The source is ${hl.state}: nothing has arrived for ${fmtMs(hl.silentForMs)}.`);
      fill(warnings, ...list.map((w) => h('li', {}, w)));
      warnings.hidden = list.length === 0;
    },
  });
}

async function main(): Promise<void> {
  const config = await loadConfig();
  if (!requireSignIn(config, byId('app'))) return;
  byId('app').hidden = false;
  const input = byId<HTMLInputElement>('channel');
  const error = byId('form-error');
  const channel = (): string | null => {
    const id = input.value.trim().toLowerCase();
    if (!STREAM_ID.test(id)) {
      error.textContent =
        'A channel id is lowercase letters, digits, - and _ (up to 64), starting with a letter or digit.';
      return null;
    }
    error.textContent = '';
    return id;
  };
  const run = (path: string) => {
    const id = channel();
    if (!id) return;
    postJson<KeyReply>(path, { streamId: id })
      .then((reply) => {
        showKey(reply);
        watchChannel(reply.streamId, config);
      })
      .catch((e: Error) => {
        error.textContent = e.message;
      });
  };
  byId('create').addEventListener('click', () => run('/api/studio/keys'));
  byId('rotate').addEventListener('click', () => {
    if (
      confirm('Rotate: every key of this channel stops working (a live stream using one is cut). Continue?')
    )
      run('/api/studio/keys/rotate');
  });
  byId('open').addEventListener('click', () => {
    const id = channel();
    if (id) watchChannel(id, config);
  });
  byId('channel-form').addEventListener('submit', (e) => {
    e.preventDefault();
    run('/api/studio/keys');
  });
  const remembered = localStorage.getItem(REMEMBERED);
  if (remembered && STREAM_ID.test(remembered)) {
    input.value = remembered;
    watchChannel(remembered, config);
  }
}

main().catch((e: Error) => {
  setText('form-error', e.message);
});
