// JSON as Go's encoding/json writes and reads it, for the values Calico's IPAM stores.
//
// Two differences from JSON.stringify/parse matter here:
//  - Calico seeds a block's sequenceNumber with time.Now().UnixNano() (~1.7e18), past 2^53, so
//    reading it into a JS number would silently change it; integers outside the safe range are
//    read as bigint instead.
//  - Go escapes <, >, & and U+2028/U+2029 in strings and sorts map keys; writing the same bytes
//    keeps podway's writes byte-identical to Calico's, so a diff of the datastore shows only real
//    changes.

export type GoJsonValue = null | boolean | number | bigint | string | GoJsonValue[] | { [key: string]: GoJsonValue };

const HEX = '0123456789abcdef';

/** A Go-escaped JSON string literal. */
export function goString(text: string): string {
  let out = '"';
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) out += '\\"';
    else if (c === 0x5c) out += '\\\\';
    else if (c === 0x0a) out += '\\n';
    else if (c === 0x0d) out += '\\r';
    else if (c === 0x09) out += '\\t';
    else if (c === 0x08) out += '\\b';
    else if (c === 0x0c) out += '\\f';
    else if (c < 0x20 || c === 0x3c || c === 0x3e || c === 0x26) out += '\\u00' + HEX[c >> 4] + HEX[c & 15];
    else if (c === 0x2028 || c === 0x2029) out += c === 0x2028 ? '\\u2028' : '\\u2029';
    else out += text[i];
  }
  return out + '"';
}

/** A Go map[string]string: keys in byte order, as encoding/json sorts them. */
export function goStringMap(map: Readonly<Record<string, string>>): string {
  const keys = Object.keys(map).sort(compareGoStrings);
  return '{' + keys.map((k) => goString(k) + ':' + goString(map[k])).join(',') + '}';
}

/** Go sorts map keys by their UTF-8 bytes; for the BMP that matches UTF-16 code-unit order except
 * around surrogates, which Calico's keys (ordinals, CIDRs, label-like names) never contain. */
export function compareGoStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Parses JSON; integers outside ±(2^53-1) come back as bigint, all others as number. */
export function parseGoJson(text: string): GoJsonValue {
  let pos = 0;
  const fail = (what: string): never => {
    throw new SyntaxError(`invalid JSON at offset ${pos}: ${what}`);
  };
  const ws = (): void => {
    while (pos < text.length) {
      const c = text.charCodeAt(pos);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) pos++;
      else break;
    }
  };
  const value = (depth: number): GoJsonValue => {
    if (depth > 200) fail('nested too deeply');
    ws();
    const c = text[pos];
    if (c === '{') {
      pos++;
      const obj: { [key: string]: GoJsonValue } = {};
      ws();
      if (text[pos] === '}') { pos++; return obj; }
      for (;;) {
        ws();
        if (text[pos] !== '"') fail('expected a string key');
        const key = str();
        ws();
        if (text[pos] !== ':') fail("expected ':'");
        pos++;
        obj[key] = value(depth + 1);
        ws();
        if (text[pos] === ',') { pos++; continue; }
        if (text[pos] === '}') { pos++; return obj; }
        fail("expected ',' or '}'");
      }
    }
    if (c === '[') {
      pos++;
      const arr: GoJsonValue[] = [];
      ws();
      if (text[pos] === ']') { pos++; return arr; }
      for (;;) {
        arr.push(value(depth + 1));
        ws();
        if (text[pos] === ',') { pos++; continue; }
        if (text[pos] === ']') { pos++; return arr; }
        fail("expected ',' or ']'");
      }
    }
    if (c === '"') return str();
    if (text.startsWith('true', pos)) { pos += 4; return true; }
    if (text.startsWith('false', pos)) { pos += 5; return false; }
    if (text.startsWith('null', pos)) { pos += 4; return null; }
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(pos, pos + 400));
    if (!m) return fail('unexpected character');
    pos += m[0].length;
    if (m[2] === undefined && m[3] === undefined) {
      const n = Number(m[0]);
      return Number.isSafeInteger(n) ? n : BigInt(m[0]);
    }
    return Number(m[0]);
  };
  const str = (): string => {
    pos++; // opening quote
    let out = '';
    for (;;) {
      if (pos >= text.length) fail('unterminated string');
      const c = text[pos];
      if (c === '"') { pos++; return out; }
      if (c === '\\') {
        const e = text[pos + 1];
        pos += 2;
        if (e === 'u') {
          const hex = text.slice(pos, pos + 4);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail('bad \\u escape');
          out += String.fromCharCode(parseInt(hex, 16));
          pos += 4;
        } else {
          const simple: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
          if (!(e in simple)) fail('bad escape');
          out += simple[e];
        }
        continue;
      }
      if (c.charCodeAt(0) < 0x20) fail('control character in string');
      out += c;
      pos++;
    }
  };
  const result = value(0);
  ws();
  if (pos !== text.length) fail('trailing characters');
  return result;
}

/** A parsed value written back as JSON (object keys in the order read; bigints as read). */
export function goJsonText(v: GoJsonValue): string {
  if (v === null) return 'null';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') return JSON.stringify(v);
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'string') return goString(v);
  if (Array.isArray(v)) return `[${v.map(goJsonText).join(',')}]`;
  return `{${Object.entries(v).map(([k, x]) => `${goString(k)}:${goJsonText(x)}`).join(',')}}`;
}
