// Calico's label selector language (as IPPool.spec.nodeSelector uses it), parsed and evaluated
// against a node's labels:
//   all()  global()  has(k)  !has(k)  k == "v"  k != "v"  k in {"a","b"}  k not in {...}
//   k contains "s"  k starts with "s"  k ends with "s"  !e  e && e  e || e  (e)
// '&&' binds tighter than '||'; strings take double or single quotes (no escapes, as in Calico);
// whitespace is spaces and tabs; an empty selector selects everything, like Calico's.
// Errors carry the 0-based character position.

export type Labels = Readonly<Record<string, string>>;

export type SelectorNode =
  | { readonly op: 'all' }
  | { readonly op: 'has'; readonly key: string }
  | { readonly op: '==' | '!=' | 'contains' | 'starts with' | 'ends with'; readonly key: string; readonly value: string }
  | { readonly op: 'in' | 'not in'; readonly key: string; readonly values: readonly string[] }
  | { readonly op: '!'; readonly arg: SelectorNode }
  | { readonly op: '&&' | '||'; readonly args: readonly SelectorNode[] };

export class SelectorSyntaxError extends Error {
  constructor(readonly selector: string, readonly position: number, readonly detail: string) {
    super(`selector ${JSON.stringify(selector)}: ${detail} at position ${position}`);
    this.name = 'SelectorSyntaxError';
  }
}

type Tok =
  | { kind: 'label' | 'string' | 'has'; pos: number; text: string }
  | { kind: '(' | ')' | '{' | '}' | ',' | '==' | '!=' | '!' | '&&' | '||' | 'in' | 'not in' | 'contains' | 'starts with' | 'ends with' | 'all' | 'global' | 'eof'; pos: number };

const LABEL_CHAR = /[A-Za-z0-9_./-]/;

function tokenize(input: string): Tok[] {
  const toks: Tok[] = [];
  const fail = (pos: number, detail: string): never => { throw new SelectorSyntaxError(input, pos, detail); };
  let i = 0;
  const skipWs = (): void => { while (i < input.length && (input[i] === ' ' || input[i] === '\t')) i++; };
  const identAt = (at: number): string => {
    let j = at;
    while (j < input.length && j - at < 512 && LABEL_CHAR.test(input[j])) j++;
    return input.slice(at, j);
  };
  // A keyword must not run on into more label characters ("instance" is not "in" + "stance").
  const keywordAt = (word: string): boolean => input.startsWith(word, i) && !(i + word.length < input.length && /[A-Za-z0-9_]/.test(input[i + word.length]));
  for (;;) {
    skipWs();
    const pos = i;
    if (i >= input.length) { toks.push({ kind: 'eof', pos }); return toks; }
    const c = input[i];
    const last = toks.length > 0 ? toks[toks.length - 1].kind : null;
    if (c === '(' || c === ')' || c === '{' || c === '}' || c === ',') { toks.push({ kind: c, pos }); i++; continue; }
    if (c === '"' || c === "'") {
      const end = input.indexOf(c, i + 1);
      if (end < 0) fail(pos, 'unterminated string');
      toks.push({ kind: 'string', pos, text: input.slice(i + 1, end) });
      i = end + 1;
      continue;
    }
    if (c === '=') {
      if (input[i + 1] !== '=') fail(pos, "expected '=='");
      toks.push({ kind: '==', pos }); i += 2; continue;
    }
    if (c === '!') {
      if (input[i + 1] === '=') { toks.push({ kind: '!=', pos }); i += 2; } else { toks.push({ kind: '!', pos }); i++; }
      continue;
    }
    if (c === '&' || c === '|') {
      if (input[i + 1] !== c) fail(pos, `expected '${c}${c}'`);
      toks.push({ kind: c === '&' ? '&&' : '||', pos }); i += 2; continue;
    }
    if (last === 'label') {
      // After a label only an operator may follow.
      const two = (first: string, second: string, kind: 'starts with' | 'ends with' | 'not in'): boolean => {
        if (!keywordAt(first)) return false;
        i += first.length; skipWs();
        if (!keywordAt(second)) fail(i, `expected '${second}' after '${first}'`);
        i += second.length;
        toks.push({ kind, pos });
        return true;
      };
      if (keywordAt('contains')) { toks.push({ kind: 'contains', pos }); i += 8; continue; }
      if (two('starts', 'with', 'starts with') || two('ends', 'with', 'ends with') || two('not', 'in', 'not in')) continue;
      if (keywordAt('in')) { toks.push({ kind: 'in', pos }); i += 2; continue; }
      fail(pos, 'expected an operator (==, !=, in, not in, contains, starts with, ends with)');
    }
    for (const fn of ['has', 'all', 'global'] as const) {
      if (input.startsWith(fn + '(', i)) {
        i += fn.length + 1; skipWs();
        if (fn === 'has') {
          const key = identAt(i);
          if (key === '') fail(i, 'expected a label name in has(...)');
          i += key.length; skipWs();
          if (input[i] !== ')') fail(i, "expected ')' to close has(");
          i++;
          toks.push({ kind: 'has', pos, text: key });
        } else {
          if (input[i] !== ')') fail(i, `expected ')' after ${fn}(`);
          i++;
          toks.push({ kind: fn, pos });
        }
        break;
      }
    }
    if (i !== pos) continue;
    const ident = identAt(i);
    if (ident === '') fail(pos, `unexpected character ${JSON.stringify(c)}`);
    toks.push({ kind: 'label', pos, text: ident });
    i += ident.length;
  }
}

/** Parses a selector; throws SelectorSyntaxError naming the position of the problem. */
export function parseSelector(input: string): SelectorNode {
  const toks = tokenize(input);
  let at = 0;
  const peek = (): Tok => toks[at];
  const describe = (t: Tok): string => (t.kind === 'eof' ? 'end of selector' : 'text' in t ? `${t.kind} ${JSON.stringify(t.text)}` : `'${t.kind}'`);
  const fail = (t: Tok, expected: string): never => { throw new SelectorSyntaxError(input, t.pos, `expected ${expected}, found ${describe(t)}`); };
  const expectString = (): string => {
    const t = toks[at++];
    if (t.kind !== 'string') fail(t, 'a quoted string');
    return (t as { text: string }).text;
  };
  const orExpr = (): SelectorNode => {
    const args = [andExpr()];
    while (peek().kind === '||') { at++; args.push(andExpr()); }
    return args.length === 1 ? args[0] : { op: '||', args };
  };
  const andExpr = (): SelectorNode => {
    const args = [unary()];
    while (peek().kind === '&&') { at++; args.push(unary()); }
    return args.length === 1 ? args[0] : { op: '&&', args };
  };
  const unary = (): SelectorNode => {
    const t = peek();
    if (t.kind === '!') { at++; return { op: '!', arg: unary() }; }
    return primary();
  };
  const primary = (): SelectorNode => {
    const t = toks[at++];
    switch (t.kind) {
      case 'all':
      case 'global':
        return { op: 'all' };
      case 'has':
        return { op: 'has', key: t.text };
      case '(': {
        const inner = orExpr();
        if (peek().kind !== ')') fail(peek(), "')'");
        at++;
        return inner;
      }
      case 'label': {
        const opTok = toks[at++];
        switch (opTok.kind) {
          case '==': case '!=': case 'contains': case 'starts with': case 'ends with':
            return { op: opTok.kind, key: t.text, value: expectString() };
          case 'in': case 'not in': {
            if (peek().kind !== '{') fail(peek(), "'{'");
            at++;
            const values: string[] = [];
            if (peek().kind !== '}') {
              for (;;) {
                values.push(expectString());
                if (peek().kind === ',') { at++; continue; }
                break;
              }
            }
            if (peek().kind !== '}') fail(peek(), "',' or '}'");
            at++;
            return { op: opTok.kind, key: t.text, values };
          }
          default:
            return fail(opTok, 'an operator');
        }
      }
      default:
        return fail(t, 'a label, has(...), all() or (');
    }
  };
  if (peek().kind === 'eof') return { op: 'all' };
  const tree = orExpr();
  if (peek().kind !== 'eof') fail(peek(), "'&&', '||' or end of selector");
  return tree;
}

export function evaluateSelector(node: SelectorNode, labels: Labels): boolean {
  const get = (key: string): string | undefined => (Object.prototype.hasOwnProperty.call(labels, key) ? labels[key] : undefined);
  switch (node.op) {
    case 'all': return true;
    case 'has': return get(node.key) !== undefined;
    case '==': return get(node.key) === node.value;
    case '!=': return get(node.key) !== node.value;
    case 'contains': { const v = get(node.key); return v !== undefined && v.includes(node.value); }
    case 'starts with': { const v = get(node.key); return v !== undefined && v.startsWith(node.value); }
    case 'ends with': { const v = get(node.key); return v !== undefined && v.endsWith(node.value); }
    case 'in': { const v = get(node.key); return v !== undefined && node.values.includes(v); }
    case 'not in': { const v = get(node.key); return v === undefined || !node.values.includes(v); }
    case '!': return !evaluateSelector(node.arg, labels);
    case '&&': return node.args.every((a) => evaluateSelector(a, labels));
    case '||': return node.args.some((a) => evaluateSelector(a, labels));
  }
}

/** A parsed selector with its text, for repeated evaluation. */
export class Selector {
  readonly tree: SelectorNode;
  constructor(readonly text: string) {
    this.tree = parseSelector(text);
  }
  matches(labels: Labels): boolean {
    return evaluateSelector(this.tree, labels);
  }
}
