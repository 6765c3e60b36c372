// What the ladder needs to know about a source, read from the FLV codec headers: H.264 profile, level,
// size, chroma format and bit depth (from the SPS), AAC sample rate and channels (AudioSpecificConfig).
import { parseH264Sps } from './nms.js';

export interface VideoHeader {
  profile: string;
  profileIdc: number;
  level: number;
  width: number;
  height: number;
  chromaFormat: number;
  bitDepth: number;
}

export interface AudioHeader {
  sampleRate: number;
  channels: number;
}

const FLV_CODEC_H264 = 7;
const FLV_SOUND_AAC = 10;

const PROFILES: Record<number, string> = {
  66: 'Baseline',
  77: 'Main',
  88: 'Extended',
  100: 'High',
  110: 'High 10',
  122: 'High 4:2:2',
  244: 'High 4:4:4',
};

// Profiles whose SPS carries chroma_format_idc and bit depths (H.264 7.3.2.1.1).
const HIGH_PROFILES = new Set([100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135]);

/** Exp-Golomb bit reader over an RBSP (emulation prevention bytes removed). */
class BitReader {
  private bit = 0;
  constructor(private readonly bytes: Buffer) {}
  readBits(n: number): number {
    let value = 0;
    for (let i = 0; i < n; i++) {
      const byte = this.bytes[this.bit >> 3];
      if (byte === undefined) throw new Error('SPS truncated');
      value = (value << 1) | ((byte >> (7 - (this.bit & 7))) & 1);
      this.bit++;
    }
    return value;
  }
  readUE(): number {
    let zeros = 0;
    while (this.readBits(1) === 0) {
      if (++zeros > 31) throw new Error('SPS: bad exp-Golomb code');
    }
    return (2 ** zeros - 1 + (zeros ? this.readBits(zeros) : 0)) >>> 0;
  }
}

function toRbsp(nal: Buffer): Buffer {
  const out: number[] = [];
  for (let i = 0; i < nal.length; i++) {
    if (i >= 2 && nal[i] === 3 && nal[i - 1] === 0 && nal[i - 2] === 0) continue;
    out.push(nal[i] as number);
  }
  return Buffer.from(out);
}

export class UnsupportedSourceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnsupportedSourceError';
  }
}

/**
 * Parses an FLV video tag holding an AVC sequence header. Throws UnsupportedSourceError with a message
 * meant for the streamer when the ladder cannot take the source.
 */
export function parseVideoHeader(tag: Buffer): VideoHeader {
  const codecId = (tag[0] ?? 0) & 0x0f;
  if ((tag[0] ?? 0) & 0x80 || codecId !== FLV_CODEC_H264) {
    throw new UnsupportedSourceError(
      'video must be H.264 (AVC); set the encoder to x264 or an H.264 hardware encoder',
    );
  }
  // tag: [frame/codec][AVCPacketType=0][cts x3][AVCDecoderConfigurationRecord...]
  const record = tag.subarray(5);
  const spsCount = (record[5] ?? 0) & 0x1f;
  if (record.length < 8 || spsCount === 0)
    throw new UnsupportedSourceError('H.264 sequence header carries no SPS');
  const spsLength = record.readUInt16BE(6);
  const sps = record.subarray(8, 8 + spsLength);
  const reader = new BitReader(toRbsp(sps.subarray(1)));
  const profileIdc = reader.readBits(8);
  reader.readBits(8); // constraint flags
  const level = reader.readBits(8);
  reader.readUE(); // seq_parameter_set_id
  let chromaFormat = 1;
  let bitDepth = 8;
  if (HIGH_PROFILES.has(profileIdc)) {
    chromaFormat = reader.readUE();
    if (chromaFormat === 3) reader.readBits(1); // separate_colour_plane_flag
    bitDepth = reader.readUE() + 8;
  }
  const size = parseH264Sps(sps);
  if (!size) throw new UnsupportedSourceError('H.264 SPS could not be read');
  if (chromaFormat !== 1 || bitDepth !== 8) {
    const chroma = ['4:0:0', '4:2:0', '4:2:2', '4:4:4'][chromaFormat] ?? `chroma ${chromaFormat}`;
    throw new UnsupportedSourceError(
      `video is ${chroma} ${bitDepth}-bit H.264; send 8-bit 4:2:0 (yuv420p, profile High or Main)`,
    );
  }
  return {
    profile: PROFILES[profileIdc] ?? `profile ${profileIdc}`,
    profileIdc,
    level: level / 10,
    width: size.width,
    height: size.height,
    chromaFormat,
    bitDepth,
  };
}

const AAC_RATES = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350];

/** Parses an FLV audio tag holding an AAC sequence header (AudioSpecificConfig). */
export function parseAudioHeader(tag: Buffer): AudioHeader {
  if ((tag[0] ?? 0) >> 4 !== FLV_SOUND_AAC) {
    throw new UnsupportedSourceError('audio must be AAC; set the encoder to AAC (OBS: the default)');
  }
  const asc = tag.subarray(2);
  if (asc.length < 2) throw new UnsupportedSourceError('AAC sequence header is truncated');
  const frequencyIndex = (((asc[0] as number) & 0x07) << 1) | ((asc[1] as number) >> 7);
  const channels = ((asc[1] as number) >> 3) & 0x0f;
  return { sampleRate: AAC_RATES[frequencyIndex] ?? 0, channels: channels || 2 };
}
