// Encryption of the payloads Cordon hands to Temporal (workflow and activity arguments and results,
// queries, updates, signals), so that identities and evidence are not stored in clear in Temporal's
// database. The worker, the API's client and the history route share it; workflow code never sees it
// (the worker decodes before the sandbox and encodes after it).
import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { DataConverter, Payload, PayloadCodec } from '@temporalio/common';
import type { History } from '@temporalio/common/lib/proto-utils.js';
import type { temporal } from '@temporalio/proto';
import { z } from 'zod';
import { ConfigError, type Config } from './config.js';

/** The `encoding` metadata of a payload this codec encrypted. */
export const ENCRYPTED_ENCODING = 'binary/encrypted';
/** The metadata entry naming the key a payload was encrypted with. */
export const KEY_ID_METADATA = 'encryption-key-id';

const NONCE_BYTES = 12;
const TAG_BYTES = 16;

const PayloadProto = (createRequire(import.meta.url)('@temporalio/proto') as { temporal: typeof temporal }).temporal.api.common.v1.Payload;

const KeyId = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'must be 1 to 64 letters, digits, dots, dashes or underscores');
const AesKey = z.base64('must be base64').transform((text, ctx) => {
  const key = Buffer.from(text, 'base64');
  if (key.length !== 32) {
    ctx.addIssue({ code: 'custom', message: `must be 32 bytes in base64 (AES-256), not ${key.length}` });
    return z.NEVER;
  }
  return key;
});

/**
 * The payload keys file (`CORDON_PAYLOAD_KEYS_FILE`): `{ "active": "<kid>", "keys": { "<kid>": "<base64 of 32 bytes>" },
 * "searchKey": "<base64 of 32 bytes>" }`. New payloads are encrypted with the active key; every key listed
 * can still decrypt. `searchKey` blinds the identities runs are found by (search attributes, which
 * Temporal indexes in clear): it does not rotate, since runs are found by it for as long as they are kept.
 */
export const PayloadKeysFile = z
  .strictObject({ active: KeyId, keys: z.record(KeyId, AesKey), searchKey: AesKey.optional() })
  .superRefine((file, ctx) => {
    if (!Object.hasOwn(file.keys, file.active)) {
      ctx.addIssue({ code: 'custom', path: ['active'], message: `"${file.active}" is not one of the keys (${Object.keys(file.keys).join(', ') || 'none'})` });
    }
  });
export type PayloadKeysFile = z.infer<typeof PayloadKeysFile>;

/** A payload that cannot be decrypted: its key is not configured, or the ciphertext fails authentication. */
export class PayloadCodecError extends Error {
  constructor(
    message: string,
    readonly keyId: string | undefined,
  ) {
    super(message);
    this.name = 'PayloadCodecError';
  }
}

const utf8 = (text: string) => Buffer.from(text, 'utf8');
const text = (bytes: Uint8Array | null | undefined) => (bytes ? Buffer.from(bytes).toString('utf8') : undefined);

/** True when `payload` was encrypted by this codec (whatever the key). */
export function isEncryptedPayload(payload: Payload): boolean {
  return text(payload.metadata?.encoding) === ENCRYPTED_ENCODING;
}

/**
 * AES-256-GCM over the whole serialized payload (metadata and data), with a fresh 96-bit nonce per
 * payload and the key id as additional authenticated data. Payloads without the encrypted encoding
 * (written before encryption was turned on) pass through decode unchanged.
 */
export class AesGcmPayloadCodec implements PayloadCodec {
  /** The key new payloads are encrypted with. */
  readonly activeKeyId: string;
  private readonly keys: ReadonlyMap<string, Buffer>;
  private readonly activeKey: Buffer;

  constructor(
    keys: PayloadKeysFile,
    /** Where the keys came from, for error messages. */
    private readonly source = 'the payload keys file',
  ) {
    this.keys = new Map(Object.entries(keys.keys));
    const active = this.keys.get(keys.active);
    if (!active) throw new Error(`the active payload key "${keys.active}" is not among the keys`);
    this.activeKey = active;
    this.activeKeyId = keys.active;
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => this.encrypt(payload));
  }

  /** Throws PayloadCodecError naming the key id when a payload's key is not configured or its ciphertext was altered. */
  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => (isEncryptedPayload(payload) ? this.decrypt(payload) : payload));
  }

  private encrypt(payload: Payload): Payload {
    const plain = PayloadProto.encode(payload).finish();
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.activeKey, nonce);
    // Binding the key id means a payload relabelled with another key id fails authentication.
    cipher.setAAD(utf8(this.activeKeyId));
    const body = Buffer.concat([cipher.update(plain), cipher.final()]);
    return {
      metadata: { encoding: utf8(ENCRYPTED_ENCODING), [KEY_ID_METADATA]: utf8(this.activeKeyId) },
      data: Buffer.concat([nonce, body, cipher.getAuthTag()]),
    };
  }

  private decrypt(payload: Payload): Payload {
    const keyId = text(payload.metadata?.[KEY_ID_METADATA]);
    if (!keyId) throw new PayloadCodecError(`an encrypted payload names no key (no ${KEY_ID_METADATA} metadata)`, undefined);
    const key = this.keys.get(keyId);
    if (!key) {
      throw new PayloadCodecError(`payload encrypted with key "${keyId}", which is not in ${this.source} (known: ${[...this.keys.keys()].join(', ')}); add that key back to read it`, keyId);
    }
    const data = payload.data ?? new Uint8Array();
    if (data.length < NONCE_BYTES + TAG_BYTES) throw new PayloadCodecError(`payload encrypted with key "${keyId}" is truncated (${data.length} bytes)`, keyId);
    const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(0, NONCE_BYTES));
    decipher.setAAD(utf8(keyId));
    decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
    let plain: Buffer;
    try {
      plain = Buffer.concat([decipher.update(data.subarray(NONCE_BYTES, data.length - TAG_BYTES)), decipher.final()]);
    } catch {
      throw new PayloadCodecError(`payload encrypted with key "${keyId}" fails authentication: it was altered, or ${this.source} holds a different key under that id`, keyId);
    }
    const decoded = PayloadProto.decode(plain);
    return {
      metadata: decoded.metadata,
      data: decoded.data,
      ...(decoded.externalPayloads.length > 0 ? { externalPayloads: decoded.externalPayloads } : {}),
    };
  }
}

/** Reads and validates a payload keys file; throws ConfigError naming the variable, the file and the bad field. */
export async function readPayloadKeys(path: string): Promise<PayloadKeysFile> {
  const problem = (reason: string) => new ConfigError([`CORDON_PAYLOAD_KEYS_FILE: ${path} ${reason}`]);
  let json: unknown;
  try {
    json = JSON.parse(await readFile(path, 'utf8'));
  } catch (error) {
    throw problem(error instanceof SyntaxError ? `is not JSON: ${error.message}` : `cannot be read: ${(error as Error).message}`);
  }
  const parsed = PayloadKeysFile.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw problem(`is invalid at ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'unknown'}`);
  }
  return parsed.data;
}

/** The codec from `CORDON_PAYLOAD_KEYS_FILE`, or undefined when it is not set (payloads in clear). */
export async function loadPayloadCodec(config: Pick<Config, 'payloadKeysFile'>): Promise<AesGcmPayloadCodec | undefined> {
  if (!config.payloadKeysFile) return undefined;
  return new AesGcmPayloadCodec(await readPayloadKeys(config.payloadKeysFile), `CORDON_PAYLOAD_KEYS_FILE (${config.payloadKeysFile})`);
}

/** Turns an identity (an account id or userName) into what Temporal's search attributes hold. */
export type SearchIndex = (value: string) => string;

/**
 * The blind index of `keys.searchKey`: an HMAC-SHA-256 of the identity, so a run is still found by its
 * target while Temporal's visibility store holds no identity in clear. Undefined without a search key.
 */
export function searchIndexFor(keys: PayloadKeysFile | undefined): SearchIndex | undefined {
  const key = keys?.searchKey;
  if (!key) return undefined;
  return (value) => `h${createHmac('sha256', key).update(value, 'utf8').digest('hex').slice(0, 40)}`;
}

/** The search index from `CORDON_PAYLOAD_KEYS_FILE`, when it sets a `searchKey`. */
export async function loadSearchIndex(config: Pick<Config, 'payloadKeysFile'>): Promise<SearchIndex | undefined> {
  return config.payloadKeysFile ? searchIndexFor(await readPayloadKeys(config.payloadKeysFile)) : undefined;
}

/** The data converter for every Temporal client and worker Cordon builds: the SDK's, plus the codec when configured. */
export function dataConverterFor(codec: PayloadCodec | undefined): DataConverter {
  return codec ? { payloadCodecs: [codec] } : {};
}

/** Cordon's data converter from config; throws ConfigError when the keys file is bad. */
export async function loadDataConverter(config: Pick<Config, 'payloadKeysFile'>): Promise<DataConverter> {
  return dataConverterFor(await loadPayloadCodec(config));
}

type Holder = Record<string | number, unknown>;

function isPayloadShaped(value: unknown): value is Payload {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array) return false;
  const { metadata, data } = value as Payload;
  if (typeof metadata !== 'object' || metadata === null || Object.keys(metadata).length === 0) return false;
  return Object.values(metadata).every((v) => v instanceof Uint8Array) && (data === undefined || data === null || data instanceof Uint8Array);
}

/**
 * Decodes, in place, every payload of a history with `codecs` (the last codec first, as the SDK does),
 * so that the history replays on a worker without them. Returns the same history; throws what a codec
 * throws (a PayloadCodecError for a key that is not configured).
 */
export async function decodeHistoryPayloads(history: History, codecs: readonly PayloadCodec[]): Promise<History> {
  if (codecs.length === 0) return history;
  const slots: { holder: Holder; key: string | number }[] = [];
  const visit = (value: unknown) => {
    if (typeof value !== 'object' || value === null || value instanceof Uint8Array) return;
    for (const [key, child] of Array.isArray(value) ? value.entries() : Object.entries(value)) {
      if (isPayloadShaped(child)) slots.push({ holder: value as Holder, key });
      else visit(child);
    }
  };
  visit(history);
  let payloads = slots.map(({ holder, key }) => holder[key] as Payload);
  for (const codec of [...codecs].reverse()) payloads = await codec.decode(payloads);
  slots.forEach(({ holder, key }, i) => {
    holder[key] = payloads[i];
  });
  return history;
}
