// The payload codec on its own: AES-256-GCM per payload, the key id in the payload, rotation, and
// the keys file's validation. The run-level behaviour is in test/integration/payload-encryption.test.ts.
import { randomBytes } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../config/config.js';
import {
  AesGcmPayloadCodec,
  decodeHistoryPayloads,
  ENCRYPTED_ENCODING,
  KEY_ID_METADATA,
  loadDataConverter,
  PayloadCodecError,
  readPayloadKeys,
  searchIndexFor,
  type PayloadKeysFile,
} from '../../config/payload-codec.js';
import { TargetFilter } from '../../server/run-queries.js';

const keyA = randomBytes(32);
const keyB = randomBytes(32);
const onlyA: PayloadKeysFile = { active: 'k-a', keys: { 'k-a': keyA } };
const rotatedToB: PayloadKeysFile = { active: 'k-b', keys: { 'k-a': keyA, 'k-b': keyB } };
const onlyB: PayloadKeysFile = { active: 'k-b', keys: { 'k-b': keyB } };

const evidence = { userName: 'mallory.admin', id: 'u-4711', groups: ['domain-admins'] };
const payloadOf = (value: unknown): Payload => defaultPayloadConverter.toPayload(value);
const valueOf = (payload: Payload | undefined): unknown => defaultPayloadConverter.fromPayload(payload!);
const utf8 = (bytes: Uint8Array | null | undefined) => Buffer.from(bytes ?? []).toString('utf8');

async function codecError(promise: Promise<unknown>): Promise<PayloadCodecError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(PayloadCodecError);
  return error as PayloadCodecError;
}

describe('AesGcmPayloadCodec', () => {
  it('decodes what it encoded, metadata and data alike', async () => {
    const codec = new AesGcmPayloadCodec(onlyA);
    const original = [payloadOf(evidence), payloadOf('plain text'), payloadOf(undefined)];
    const [decoded] = [await codec.decode(await codec.encode(original))];
    expect(decoded).toHaveLength(3);
    expect(decoded.map(valueOf)).toEqual([evidence, 'plain text', undefined]);
    expect(decoded.map((p) => utf8(p.metadata?.encoding))).toEqual(original.map((p) => utf8(p.metadata?.encoding)));
  });

  it('names the key in the metadata and leaves neither the data nor its encoding in clear', async () => {
    const [encoded] = await new AesGcmPayloadCodec(onlyA).encode([payloadOf(evidence)]);
    expect(Object.keys(encoded!.metadata!).sort()).toEqual([KEY_ID_METADATA, 'encoding'].sort());
    expect(utf8(encoded!.metadata!.encoding)).toBe(ENCRYPTED_ENCODING);
    expect(utf8(encoded!.metadata![KEY_ID_METADATA])).toBe('k-a');
    const bytes = Buffer.from(encoded!.data!);
    for (const clear of [evidence.userName, evidence.id, 'domain-admins', 'json/plain']) {
      expect(bytes.includes(clear)).toBe(false);
    }
  });

  it('uses a fresh nonce for every payload, so equal values encrypt differently', async () => {
    const codec = new AesGcmPayloadCodec(onlyA);
    const [first, second] = await codec.encode([payloadOf(evidence), payloadOf(evidence)]);
    expect(Buffer.from(first!.data!).subarray(0, 12).equals(Buffer.from(second!.data!).subarray(0, 12))).toBe(false);
    expect(Buffer.from(first!.data!).equals(Buffer.from(second!.data!))).toBe(false);
  });

  it('refuses a payload whose ciphertext was altered, naming its key', async () => {
    const codec = new AesGcmPayloadCodec(onlyA);
    const [encoded] = await codec.encode([payloadOf(evidence)]);
    const data = Buffer.from(encoded!.data!);
    data[20] = data[20]! ^ 0x01;
    const error = await codecError(codec.decode([{ ...encoded!, data }]));
    expect(error.keyId).toBe('k-a');
    expect(error.message).toMatch(/"k-a" fails authentication/);
  });

  it('refuses a payload relabelled with another key id it holds', async () => {
    const codec = new AesGcmPayloadCodec(rotatedToB);
    const [encoded] = await new AesGcmPayloadCodec(onlyA).encode([payloadOf(evidence)]);
    const relabelled = { ...encoded!, metadata: { ...encoded!.metadata, [KEY_ID_METADATA]: Buffer.from('k-b') } };
    expect((await codecError(codec.decode([relabelled]))).keyId).toBe('k-b');
  });

  it('refuses, naming the key id, a payload whose key it does not hold, instead of passing the ciphertext on', async () => {
    const [encoded] = await new AesGcmPayloadCodec(onlyB).encode([payloadOf(evidence)]);
    const error = await codecError(new AesGcmPayloadCodec(onlyA, 'keys.json').decode([encoded!]));
    expect(error.keyId).toBe('k-b');
    expect(error.message).toContain('"k-b"');
    expect(error.message).toContain('keys.json');
  });

  it('refuses a truncated payload', async () => {
    const [encoded] = await new AesGcmPayloadCodec(onlyA).encode([payloadOf(evidence)]);
    const error = await codecError(new AesGcmPayloadCodec(onlyA).decode([{ ...encoded!, data: encoded!.data!.subarray(0, 20) }]));
    expect(error.message).toMatch(/truncated/);
  });

  it('passes payloads written before encryption was turned on through unchanged', async () => {
    const clear = [payloadOf(evidence), payloadOf(null), { metadata: { encoding: Buffer.from('binary/plain') }, data: Buffer.from([1, 2, 3]) }];
    const decoded = await new AesGcmPayloadCodec(onlyA).decode(clear);
    expect(decoded).toEqual(clear);
  });

  it('after a rotation encrypts with the new active key and still decodes payloads of the old one', async () => {
    const [underA] = await new AesGcmPayloadCodec(onlyA).encode([payloadOf(evidence)]);
    const rotated = new AesGcmPayloadCodec(rotatedToB);
    const [underB] = await rotated.encode([payloadOf('after the rotation')]);
    expect(utf8(underB!.metadata![KEY_ID_METADATA])).toBe('k-b');
    expect((await rotated.decode([underA!, underB!])).map(valueOf)).toEqual([evidence, 'after the rotation']);
    // Dropping the old key makes its payloads unreadable, by name.
    expect((await codecError(new AesGcmPayloadCodec(onlyB).decode([underA!]))).keyId).toBe('k-a');
  });
});

describe('searchIndexFor', () => {
  it('blinds an identity the same way every time, differently under another key, and only with a search key', () => {
    const keys = { active: 'a', keys: { a: randomBytes(32) } };
    expect(searchIndexFor(keys)).toBeUndefined();
    expect(searchIndexFor(undefined)).toBeUndefined();
    const index = searchIndexFor({ ...keys, searchKey: randomBytes(32) })!;
    const other = searchIndexFor({ ...keys, searchKey: randomBytes(32) })!;
    expect(index('jo.smith@example.com')).toBe(index('jo.smith@example.com'));
    expect(index('jo.smith@example.com')).toMatch(/^h[0-9a-f]{40}$/);
    expect(index('jo.smith@example.com')).not.toBe(index('jo.smith@example.co'));
    expect(index('jo.smith@example.com')).not.toBe(other('jo.smith@example.com'));
    // What search attributes hold still passes the target filter's own check.
    expect(TargetFilter.safeParse(index('jo.smith@example.com')).success).toBe(true);
  });
});

describe('decodeHistoryPayloads', () => {
  it('decodes every payload of a history in place, at any depth, and leaves the rest alone', async () => {
    const codec = new AesGcmPayloadCodec(onlyA);
    const [input, result, header, detail] = await codec.encode([payloadOf(evidence), payloadOf('done'), payloadOf('trace'), payloadOf('why')]);
    const clearAttribute = payloadOf(['u-4711']);
    const history = {
      events: [
        { eventId: 1, workflowExecutionStartedEventAttributes: { input: { payloads: [input] }, header: { fields: { trace: header } }, searchAttributes: { indexedFields: { CordonTargets: clearAttribute } } } },
        { eventId: 2, activityTaskFailedEventAttributes: { failure: { message: 'boom', applicationFailureInfo: { details: { payloads: [detail] } } } } },
        { eventId: 3, workflowExecutionCompletedEventAttributes: { result: { payloads: [result] } } },
      ],
    };
    const decoded = (await decodeHistoryPayloads(history as never, [codec])) as unknown as typeof history;
    const [started, failed, completed] = decoded.events;
    expect(valueOf(started!.workflowExecutionStartedEventAttributes!.input.payloads[0])).toEqual(evidence);
    expect(valueOf(started!.workflowExecutionStartedEventAttributes!.header.fields.trace)).toBe('trace');
    expect(started!.workflowExecutionStartedEventAttributes!.searchAttributes.indexedFields.CordonTargets).toEqual(clearAttribute);
    expect(valueOf(failed!.activityTaskFailedEventAttributes!.failure.applicationFailureInfo.details.payloads[0])).toBe('why');
    expect(failed!.activityTaskFailedEventAttributes!.failure.message).toBe('boom');
    expect(valueOf(completed!.workflowExecutionCompletedEventAttributes!.result.payloads[0])).toBe('done');
  });

  it('fails naming the key when a payload of the history is under a key it does not hold', async () => {
    const [input] = await new AesGcmPayloadCodec(onlyB).encode([payloadOf(evidence)]);
    const history = { events: [{ workflowExecutionStartedEventAttributes: { input: { payloads: [input] } } }] };
    expect((await codecError(decodeHistoryPayloads(history as never, [new AesGcmPayloadCodec(onlyA)]))).keyId).toBe('k-b');
  });
});

describe('CORDON_PAYLOAD_KEYS_FILE', () => {
  const dir = mkdtemp(join(tmpdir(), 'cordon-payload-keys-'));
  let counter = 0;
  async function keysFile(content: unknown): Promise<string> {
    const file = join(await dir, `keys-${++counter}.json`);
    await writeFile(file, typeof content === 'string' ? content : JSON.stringify(content));
    return file;
  }
  async function refusal(content: unknown): Promise<string> {
    const file = await keysFile(content);
    const error = await readPayloadKeys(file).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as ConfigError).message;
    expect(message).toContain(`CORDON_PAYLOAD_KEYS_FILE: ${file}`);
    return message;
  }
  const b64 = (bytes: Buffer) => bytes.toString('base64');

  it('is off unless set, and resolved against the working directory when set', () => {
    expect(loadConfig({}, '/srv/cordon').payloadKeysFile).toBeUndefined();
    expect(loadConfig({ CORDON_PAYLOAD_KEYS_FILE: 'secrets/payload-keys.json' }, '/srv/cordon').payloadKeysFile).toBe('/srv/cordon/secrets/payload-keys.json');
  });

  it('gives no codec when unset, and a codec encrypting with the active key when set', async () => {
    expect(await loadDataConverter({ payloadKeysFile: undefined })).toEqual({});
    const file = await keysFile({ active: 'k-b', keys: { 'k-a': b64(keyA), 'k-b': b64(keyB) } });
    const converter = await loadDataConverter({ payloadKeysFile: file });
    expect(converter.payloadCodecs).toHaveLength(1);
    const [encoded] = await converter.payloadCodecs![0]!.encode([payloadOf(evidence)]);
    expect(utf8(encoded!.metadata![KEY_ID_METADATA])).toBe('k-b');
  });

  it('refuses a key that is not 32 bytes, naming the key', async () => {
    expect(await refusal({ active: 'k-a', keys: { 'k-a': b64(randomBytes(16)) } })).toMatch(/invalid at keys\.k-a: must be 32 bytes/);
  });

  it('refuses a key that is not base64, naming the key', async () => {
    expect(await refusal({ active: 'k-a', keys: { 'k-a': 'not base64!' } })).toMatch(/invalid at keys\.k-a: must be base64/);
  });

  it('refuses an active key id that is not among the keys', async () => {
    expect(await refusal({ active: 'k-c', keys: { 'k-a': b64(keyA) } })).toMatch(/invalid at active: "k-c" is not one of the keys \(k-a\)/);
  });

  it('refuses unknown fields, a bad key id, a file that is not JSON and a missing file', async () => {
    expect(await refusal({ active: 'k-a', keys: { 'k-a': b64(keyA) }, extra: 1 })).toMatch(/invalid at \(root\)/);
    expect(await refusal({ active: 'k-a', keys: { 'k-a': b64(keyA), 'bad id': b64(keyB) } })).toMatch(/invalid at keys/);
    expect(await refusal('{ "active": ')).toMatch(/is not JSON/);
    const missing = join(await dir, 'missing.json');
    await expect(readPayloadKeys(missing)).rejects.toThrow(`CORDON_PAYLOAD_KEYS_FILE: ${missing} cannot be read`);
  });
});
