import { describe, it, expect } from 'vitest';
import { SIGNATURE_WINDOW_SECONDS, signAlert, verifyAlertSignature } from '../../server/hmac.js';

const secret = Buffer.from('s3cret-key-for-tests');
const body = Buffer.from('{"source":"demo-siem","id":"orphan-1"}');
const now = 1_790_000_000;

const macOf = (header: string): string => /v1=([0-9a-f]{64})/.exec(header)?.[1] ?? '';

describe('alert signatures', () => {
  it('accepts a signature made with the same secret over the same body', () => {
    const header = signAlert(secret, body, now);
    expect(header).toMatch(new RegExp(`^t=${now},v1=[0-9a-f]{64}$`));
    expect(verifyAlertSignature(header, secret, body, now)).toEqual({ ok: true });
  });

  it('signs strings and buffers alike', () => {
    expect(signAlert(secret.toString(), body.toString(), now)).toBe(signAlert(secret, body, now));
  });

  it('refuses a signature made with another secret', () => {
    const header = signAlert('another-secret', body, now);
    expect(verifyAlertSignature(header, secret, body, now)).toEqual({ ok: false, reason: 'signature does not match' });
  });

  it('refuses a body changed by one byte', () => {
    const header = signAlert(secret, body, now);
    const changed = Buffer.from(body);
    changed[changed.length - 2] = changed[changed.length - 2]! ^ 1;
    expect(verifyAlertSignature(header, secret, changed, now)).toEqual({ ok: false, reason: 'signature does not match' });
  });

  it('refuses a valid MAC replayed under another timestamp', () => {
    const mac = macOf(signAlert(secret, body, now));
    expect(verifyAlertSignature(`t=${now + 1},v1=${mac}`, secret, body, now)).toEqual({ ok: false, reason: 'signature does not match' });
  });

  it.each([
    ['301 s old', now - 301],
    ['301 s in the future', now + 301],
  ])('refuses a timestamp %s as outside the window', (_name, t) => {
    const result = verifyAlertSignature(signAlert(secret, body, t), secret, body, now);
    expect(result.ok).toBe(false);
    expect(result).toMatchObject({ reason: expect.stringMatching(/window/) });
  });

  it.each([
    ['exactly 300 s old', now - 300],
    ['exactly 300 s in the future', now + 300],
  ])('accepts a timestamp %s', (_name, t) => {
    expect(SIGNATURE_WINDOW_SECONDS).toBe(300);
    expect(verifyAlertSignature(signAlert(secret, body, t), secret, body, now)).toEqual({ ok: true });
  });

  it('refuses a header without t=', () => {
    const mac = macOf(signAlert(secret, body, now));
    expect(verifyAlertSignature(`v1=${mac}`, secret, body, now)).toEqual({ ok: false, reason: 'signature has no valid t= timestamp' });
  });

  it('refuses a non-numeric t=', () => {
    const mac = macOf(signAlert(secret, body, now));
    expect(verifyAlertSignature(`t=soon,v1=${mac}`, secret, body, now)).toMatchObject({ ok: false, reason: expect.stringMatching(/t=/) });
  });

  it.each([
    ['too short', 'v1=abc'],
    ['not hex', `v1=${'z'.repeat(64)}`],
    ['upper-case hex', `v1=${'A'.repeat(64)}`],
    ['empty', 'v1='],
    ['another scheme only', `v0=${'a'.repeat(64)}`],
  ])('refuses a malformed v1 value (%s)', (_name, v1) => {
    expect(verifyAlertSignature(`t=${now},${v1}`, secret, body, now)).toEqual({ ok: false, reason: 'signature has no valid v1= value' });
  });

  it('refuses an empty header', () => {
    expect(verifyAlertSignature('', secret, body, now)).toMatchObject({ ok: false });
  });

  it('accepts several v1 values when a later one matches, as during a secret rotation', () => {
    const oldMac = macOf(signAlert('old-secret', body, now));
    const newMac = macOf(signAlert(secret, body, now));
    expect(verifyAlertSignature(`t=${now},v1=${oldMac},v1=${newMac}`, secret, body, now)).toEqual({ ok: true });
    expect(verifyAlertSignature(`t=${now}, v1=${oldMac}, v1=${newMac}`, secret, body, now)).toEqual({ ok: true });
  });

  it('refuses several v1 values when none matches', () => {
    const a = macOf(signAlert('old-a', body, now));
    const b = macOf(signAlert('old-b', body, now));
    expect(verifyAlertSignature(`t=${now},v1=${a},v1=${b}`, secret, body, now)).toEqual({ ok: false, reason: 'signature does not match' });
  });
});
