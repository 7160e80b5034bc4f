import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseSelector, Selector, SelectorSyntaxError } from '../../../src/control/ipam/selector';

const labels = { zone: 'a', 'kubernetes.io/os': 'linux', role: 'worker', tier: 'edge-1' };
const m = (sel: string, l: Record<string, string> = labels): boolean => new Selector(sel).matches(l);

test('all(), empty selector and global() select everything', () => {
  assert.ok(m('all()'));
  assert.ok(m(''));
  assert.ok(m('   '));
  assert.ok(m('all( )', {}));
  assert.ok(m('global()'));
});

test('equality and inequality; absent labels', () => {
  assert.ok(m('zone == "a"'));
  assert.not.ok(m('zone == "b"'));
  assert.ok(m("zone == 'a'"));
  assert.ok(m('zone != "b"'));
  assert.not.ok(m('zone != "a"'));
  assert.not.ok(m('missing == "a"'));
  assert.ok(m('missing != "a"'), 'an absent label is != anything');
  assert.ok(m('kubernetes.io/os == "linux"'));
});

test('has, !has, in, not in, contains, starts with, ends with', () => {
  assert.ok(m('has(zone)'));
  assert.ok(m('has( zone )'));
  assert.not.ok(m('has(missing)'));
  assert.ok(m('!has(missing)'));
  assert.not.ok(m('!has(zone)'));
  assert.ok(m('zone in {"a","b"}'));
  assert.ok(m('zone in { "b" , "a" }'));
  assert.not.ok(m('zone in {"b"}'));
  assert.not.ok(m('zone in {}'));
  assert.not.ok(m('missing in {"a"}'));
  assert.ok(m('zone not in {"b","c"}'));
  assert.not.ok(m('zone not in {"a"}'));
  assert.ok(m('missing not in {"a"}'));
  assert.ok(m('tier contains "dge"'));
  assert.ok(m('tier starts with "edge"'));
  assert.ok(m('tier ends with "-1"'));
  assert.not.ok(m('tier ends with "-2"'));
});

test('&&, ||, !, parentheses and precedence', () => {
  assert.ok(m('zone == "a" && role == "worker"'));
  assert.not.ok(m('zone == "a" && role == "master"'));
  assert.ok(m('zone == "b" || role == "worker"'));
  // && binds tighter than ||: false || (true && true)
  assert.ok(m('zone == "b" || zone == "a" && has(role)'));
  // (false || true) && false
  assert.not.ok(m('(zone == "b" || zone == "a") && has(missing)'));
  assert.ok(m('!(zone == "b")'));
  assert.ok(m('!!has(zone)'));
  assert.ok(m('((has(zone)))'));
  assert.equal(parseSelector('a == "1" || b == "2" && !has(c)'), {
    op: '||', args: [
      { op: '==', key: 'a', value: '1' },
      { op: '&&', args: [{ op: '==', key: 'b', value: '2' }, { op: '!', arg: { op: 'has', key: 'c' } }] },
    ],
  });
});

test('a label that starts like a keyword is a label', () => {
  assert.ok(m('instance == "x"', { instance: 'x' }));
  assert.ok(m('notes in {"y"}', { notes: 'y' }));
  assert.ok(m('hasx == "1"', { hasx: '1' }));
});

const errorOf = (sel: string): SelectorSyntaxError => {
  try {
    parseSelector(sel);
  } catch (e) {
    assert.instance(e, SelectorSyntaxError);
    return e as SelectorSyntaxError;
  }
  throw new Error(`selector ${sel} parsed but should not`);
};

test('errors name the position and what was expected', () => {
  let e = errorOf('zone = "a"');
  assert.is(e.position, 5);
  assert.match(e.message, /expected '=='/);
  assert.match(e.message, /position 5/);
  e = errorOf('zone == "a');
  assert.is(e.position, 8);
  assert.match(e.message, /unterminated string/);
  e = errorOf('zone == a');
  assert.is(e.position, 8);
  assert.match(e.message, /expected a quoted string, found label "a"/);
  e = errorOf('zone "a"');
  assert.is(e.position, 5);
  assert.match(e.message, /expected an operator/);
  e = errorOf('has(zone');
  assert.is(e.position, 8);
  assert.match(e.message, /expected '\)' to close has\(/);
  e = errorOf('(has(a)');
  assert.is(e.position, 7);
  assert.match(e.message, /expected '\)', found end of selector/);
  e = errorOf('has(a) has(b)');
  assert.is(e.position, 7);
  assert.match(e.message, /expected '&&', '\|\|' or end of selector/);
  e = errorOf('zone in {"a" "b"}');
  assert.is(e.position, 13);
  e = errorOf('a == "1" &');
  assert.is(e.position, 9);
  e = errorOf('a == "1" && ');
  assert.is(e.position, 12);
  assert.match(e.message, /found end of selector/);
  e = errorOf('zone not "a"');
  assert.match(e.message, /expected 'in' after 'not'/);
  e = errorOf('all(x)');
  assert.is(e.position, 4);
  e = errorOf('$zone == "a"');
  assert.is(e.position, 0);
  assert.match(e.message, /unexpected character "\$"/);
});

test.run();
