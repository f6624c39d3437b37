/** One entry of an LDIF content file: its DN and its attributes, in file order. */
export interface LdifEntry {
  dn: string;
  attributes: Record<string, string[]>;
}

/**
 * Parses the subset of LDIF (RFC 2849) the seed files use: content records (no changetype), comments,
 * folded lines, and `attr: value` or `attr:: base64`. Throws naming the line for anything else.
 */
export function parseLdif(text: string): LdifEntry[] {
  // Unfold first: a line starting with one space continues the previous line (RFC 2849, note 2).
  const lines: { text: string; number: number }[] = [];
  text.split(/\r?\n/).forEach((line, index) => {
    const previous = lines.at(-1);
    if (line.startsWith(' ') && previous && previous.text !== '') previous.text += line.slice(1);
    else lines.push({ text: line, number: index + 1 });
  });
  const entries: LdifEntry[] = [];
  let current: LdifEntry | undefined;
  for (const { text: line, number } of lines) {
    if (line.startsWith('#')) continue;
    if (line.trim() === '') {
      current = undefined;
      continue;
    }
    const match = /^([A-Za-z][A-Za-z0-9;-]*|[0-9]+(?:\.[0-9]+)*)(::?)(?: *)(.*)$/.exec(line);
    if (!match) throw new Error(`LDIF line ${number}: expected "attribute: value", got ${JSON.stringify(line.slice(0, 80))}`);
    const [, name = '', separator, raw = ''] = match;
    const value = separator === '::' ? Buffer.from(raw, 'base64').toString('utf8') : raw;
    const lower = name.toLowerCase();
    if (!current) {
      if (lower === 'version') continue;
      if (lower !== 'dn') throw new Error(`LDIF line ${number}: a record must start with "dn:", got ${name}`);
      current = { dn: value, attributes: {} };
      entries.push(current);
      continue;
    }
    if (lower === 'changetype') throw new Error(`LDIF line ${number}: change records are not supported, only content records`);
    (current.attributes[name] ??= []).push(value);
  }
  return entries;
}
