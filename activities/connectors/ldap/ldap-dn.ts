// Building DNs from values that may come from outside (RFC 4514). Filters need no string escaping
// here: the connector builds them as ldapts Filter objects, which travel BER-encoded (RFC 4511
// §4.5.1), so a value never passes through a filter parser.

const ATTRIBUTE_TYPE = /^(?:[A-Za-z][A-Za-z0-9-]*|\d+(?:\.\d+)+)$/;

/** Whether `name` is an attribute type as RFC 4512 §1.4 spells it (a descr or a numeric OID). */
export function isAttributeType(name: string): boolean {
  return ATTRIBUTE_TYPE.test(name);
}

/**
 * Escapes an attribute value for use in a DN string (RFC 4514 §2.4): `"+,;<>\` and `=` anywhere, a
 * leading space or `#`, a trailing space, and control characters (as `\hh`, so a NUL cannot cut
 * the string short in a C server).
 */
export function escapeDnValue(value: string): string {
  let out = '';
  for (let i = 0; i < value.length; i++) {
    const char = value[i]!;
    const code = char.charCodeAt(0);
    if (code < 0x20 || code === 0x7f) out += `\\${code.toString(16).padStart(2, '0')}`;
    else if ('"+,;<>\\='.includes(char)) out += `\\${char}`;
    else if ((i === 0 && (char === ' ' || char === '#')) || (i === value.length - 1 && char === ' ')) out += `\\${char}`;
    else out += char;
  }
  return out;
}

/** One RDN, `attribute=value`, with the value escaped; throws on a malformed attribute type or an empty value. */
export function rdn(attribute: string, value: string): string {
  if (!isAttributeType(attribute)) throw new Error(`not an LDAP attribute type: ${JSON.stringify(attribute)}`);
  if (value.length === 0) throw new Error(`an RDN needs a value (${attribute})`);
  return `${attribute}=${escapeDnValue(value)}`;
}

/** The DN of the child of `parent` named `attribute=value` (the value escaped; `parent` is trusted). */
export function childDn(parent: string, attribute: string, value: string): string {
  return `${rdn(attribute, value)},${parent}`;
}
