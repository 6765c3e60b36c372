// /watch/<streamId>: the viewer's page. The gateway's event stream says whether the stream is live; only
// then does the player load, and until it plays the page says "offline", "starting soon" or "ended"
// instead of showing a broken player. The chat panel sits beside it.
import type { ChatTokenReply, StreamState } from '../../src/shared/api.js';
import { loadConfig, postJson, subscribe } from './api.js';
import { ChatConnection, ChatPanel } from './chat.js';
import { byId, fill, h, setText } from './dom.js';
import { Player } from './player.js';
import './style.css';

const streamId = decodeURIComponent(location.pathname.split('/')[2] ?? '');
document.title = `${streamId} - live`;
setText('stream-title', streamId);

const video = byId<HTMLVideoElement>('video');
const overlay = byId('overlay');
const quality = byId<HTMLSelectElement>('quality');
const liveBadge = byId('live-badge');
const goLive = byId<HTMLButtonElement>('go-live');
const lowLatencyBox = byId<HTMLInputElement>('low-latency');

type View = 'loading' | 'offline' | 'starting' | 'playing' | 'ended' | 'error';
function showView(view: View, text = ''): void {
  document.body.dataset.view = view;
  overlay.hidden = view === 'playing';
  const titles: Record<View, string> = {
    loading: 'Loading...',
    offline: 'Offline',
    starting: 'Starting soon',
    playing: '',
    ended: 'Stream ended',
    error: 'Something went wrong',
  };
  fill(overlay, h('strong', {}, titles[view]), text ? h('span', {}, text) : null);
}
showView('loading');

let streamState: StreamState | null = null;
let playedOnce = false;

async function main(): Promise<void> {
  const config = await loadConfig();
  // Low latency (LL-HLS) by default where the platform offers it; ?ll=0 or the checkbox switches to plain
  // HLS (from the CDN: steadier on poor networks, a few seconds more behind).
  const wantsLowLatency = () =>
    config.llHlsBase !== null && (localStorage.getItem('live.lowLatency') ?? '1') === '1';
  const llParam = new URLSearchParams(location.search).get('ll');
  if (llParam === '0' || llParam === '1') localStorage.setItem('live.lowLatency', llParam);
  lowLatencyBox.checked = wantsLowLatency();
  lowLatencyBox.disabled = config.llHlsBase === null;
  const playerEvents: ConstructorParameters<typeof Player>[2] = {
    onUnavailable: (reason) => {
      if (streamState?.state === 'live')
        showView(
          'starting',
          reason === 'starting' ? 'The stream is about to begin.' : 'Reconnecting to the video...',
        );
    },
    onPlaying: () => {
      playedOnce = true;
      showView('playing');
    },
    onLevels: (levels) => {
      fill(
        quality,
        h('option', { value: '-1' }, 'Auto'),
        // Highest first, as people read a quality menu (hls.js orders levels by bitrate, lowest first).
        ...[...levels].reverse().map((l) => h('option', { value: String(l.index) }, l.name)),
      );
      quality.disabled = false;
    },
    onLevelSwitched: () => showLevel(),
    onEnded: () => {
      if (streamState?.state !== 'live') showView('ended', 'Thanks for watching.');
    },
  };
  const newPlayer = (lowLatency: boolean) =>
    new Player(
      video,
      `${lowLatency ? config.llHlsBase : config.hlsBase}/${encodeURIComponent(streamId)}/master.m3u8`,
      playerEvents,
      lowLatency,
    );
  let player = newPlayer(wantsLowLatency());
  byId('mode').textContent = player.lowLatency ? 'LL-HLS' : 'HLS';
  lowLatencyBox.addEventListener('change', () => {
    localStorage.setItem('live.lowLatency', lowLatencyBox.checked ? '1' : '0');
    const wasStarted = player.started;
    player.destroy();
    player = newPlayer(wantsLowLatency());
    byId('mode').textContent = player.lowLatency ? 'LL-HLS' : 'HLS';
    if (wasStarted) player.start();
  });
  // What plays now: "360p", or "auto (360p)" while hls.js picks (choosing auto may not switch at once).
  const showLevel = () => {
    const hls = player.instance;
    if (!hls || hls.currentLevel < 0) return;
    const name = `${hls.levels[hls.currentLevel]?.height ?? '?'}p`;
    setText('quality-current', hls.autoLevelEnabled ? `auto (${name})` : name);
    byId('quality-current').dataset.level = String(hls.currentLevel);
  };
  quality.addEventListener('change', () => {
    player.setLevel(Number(quality.value));
    showLevel();
  });
  goLive.addEventListener('click', () => player.goLive());

  // The live-edge indicator and latency: twice a second, and at once when the stream's state changes.
  const showIndicator = () => {
    const latency = player.latency;
    setText('latency', latency === null ? '-' : `${latency.toFixed(1)} s`);
    const behind = player.behindLive;
    const playing = document.body.dataset.view === 'playing';
    const atEdge = playing && behind !== null && behind < player.targetDuration * 2 + 1;
    liveBadge.classList.toggle('at-edge', atEdge);
    liveBadge.textContent = !playing
      ? (streamState?.state ?? 'offline').toUpperCase()
      : atEdge
        ? 'LIVE'
        : 'BEHIND';
    goLive.hidden = !playing || behind === null || atEdge;
  };
  window.setInterval(showIndicator, 500);

  subscribe(`/api/events?stream=${encodeURIComponent(streamId)}`, {
    state: (s: StreamState) => {
      streamState = s;
      byId('source-stalled').hidden = !(s.state === 'live' && s.sourceStalled);
      if (s.state === 'live') {
        if (!player.started) {
          if (!playedOnce) showView('starting', 'The stream is about to begin.');
          player.start();
        }
      } else if (s.state === 'ended') {
        // The picture runs a few seconds behind: let it play to its end (ENDLIST) before saying so.
        if (!player.started || video.paused) {
          player.stop();
          showView('ended', 'Thanks for watching.');
        }
      } else {
        player.stop();
        showView('offline', 'This channel is not live right now. This page starts the video when it is.');
      }
      showIndicator();
    },
  });

  const panel = new ChatPanel(byId('chat'), { videoClock: () => player.videoClock() });
  const wantsModerator = new URLSearchParams(location.search).get('as') === 'moderator';
  if (!config.guestChat && !config.admin) {
    panel.events.onStatus('sign in on the site to chat', false);
  } else {
    const role = wantsModerator && config.admin ? 'moderator' : 'viewer';
    const connection = new ChatConnection(
      `${config.chatUrl}/${encodeURIComponent(streamId)}`,
      () => postJson<ChatTokenReply>('/api/chat/token', { room: streamId, role }),
      panel.events,
    );
    panel.attach(connection);
    connection.start().catch((e: Error) => panel.events.onGone(`Chat is not available: ${e.message}`));
  }
  if (config.admin && !wantsModerator)
    byId('chat-extra').append(h('a', { href: `?as=moderator`, id: 'moderate' }, 'Moderate this chat'));

  // For tests and curious developers: the player's internals and counters.
  Object.assign(window, {
    __live: {
      get player() {
        return player;
      },
      hls: () => player.instance,
      get stats() {
        return player.stats;
      },
      video,
    },
  });
}

main().catch((error: Error) => showView('error', error.message));
