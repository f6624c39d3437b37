// HTML for the web UI without a template engine: a tagged template that escapes every interpolated
// value unless it is already-built HTML. The only way to make `Html` from a string is `html`, so an
// unescaped string cannot reach a page by accident.

const brand: unique symbol = Symbol('cordon.html');

/** A fragment of HTML built by `html` (its interpolations escaped). */
export interface Html {
  readonly [brand]: true;
  readonly value: string;
  toString(): string;
}

/** What may be interpolated: text (escaped), numbers, HTML fragments, lists of these; nothing for null, undefined and false. */
export type HtmlValue = string | number | bigint | boolean | null | undefined | Html | readonly HtmlValue[];

const ESCAPES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escapes text for an HTML text node or a quoted attribute value. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

function fragment(value: string): Html {
  return Object.freeze({ [brand]: true as const, value, toString: () => value });
}

/** Whether `value` is a fragment built by `html`. */
export function isHtml(value: unknown): value is Html {
  return typeof value === 'object' && value !== null && (value as Partial<Html>)[brand] === true;
}

function render(value: HtmlValue): string {
  if (value === null || value === undefined || value === false) return '';
  if (isHtml(value)) return value.value;
  if (Array.isArray(value)) return value.map(render).join('');
  switch (typeof value) {
    case 'string':
      return escapeHtml(value);
    case 'number':
    case 'bigint':
      return String(value);
    case 'boolean':
      return 'true';
    default:
      // A plain object would print as "[object Object]": a bug to surface, not to render.
      throw new TypeError(`cannot put a ${typeof value} into HTML: format it first`);
  }
}

/**
 * Builds HTML: the literal parts are kept, every interpolation is escaped (see `HtmlValue`). Throws a
 * TypeError for a value that is neither text, a number, a fragment nor a list of these.
 */
export function html(strings: TemplateStringsArray, ...values: HtmlValue[]): Html {
  let out = strings[0] ?? '';
  for (let i = 0; i < values.length; i++) out += render(values[i]!) + (strings[i + 1] ?? '');
  return fragment(out);
}

/** Joins fragments with a separator (itself escaped when text). */
export function join(items: readonly HtmlValue[], separator: HtmlValue = ''): Html {
  return fragment(items.map(render).join(render(separator)));
}
