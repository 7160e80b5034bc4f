// `podway trace` and `podway capture` arguments a user gets wrong: refused before podway is asked
// (no control socket exists at the path given), naming the option or the filter word.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { podway } from './cli-kit';
import { parseTraceFilter } from '../../src/dataplane/trace';

const t = suite('trace and capture options');
const NO_SOCKET = ['--control', '/nonexistent/podway-trace-options.sock'];

t('trace -n and --timeout must be positive numbers (-n abc used to wait the whole timeout for nothing)', async () => {
  for (const [flag, bad, said] of [['-n', 'abc', /'-n, --count <n>' argument 'abc' is invalid/], ['-n', '0', /argument '0' is invalid/],
    ['-n', '-3', /argument '-3' is invalid/], ['--timeout', 'abc', /'--timeout <seconds>' argument 'abc' is invalid/], ['--timeout', '0', /argument '0' is invalid/]] as const) {
    const r = await podway(['trace', 'icmp', flag, bad, ...NO_SOCKET]);
    assert.is.not(r.code, 0, `${flag} ${bad} was accepted`);
    assert.match(r.err, said);
    assert.not.match(r.err, /not running/);
  }
});

t('capture -n must be a whole number of 1 or more', async () => {
  const r = await podway(['capture', 'icmp', '-n', 'x', '-w', '-', ...NO_SOCKET]);
  assert.is.not(r.code, 0);
  assert.match(r.err, /'-n, --count <n>' argument 'x' is invalid/);
});

t('filter: proto takes a name or 0..255; anything else is refused naming it', () => {
  assert.is(parseTraceFilter(['proto', '47']).proto, 47);
  assert.is(parseTraceFilter(['proto', 'ipip']).proto, 4);
  assert.is(parseTraceFilter(['icmp6']).proto, 58);
  for (const bad of ['300', '-1', '1.5', 'x', '']) {
    assert.throws(() => parseTraceFilter(['proto', bad]), /unknown protocol|needs a value/, `proto ${JSON.stringify(bad)}`);
  }
});

t('--help lists every filter word', async () => {
  const r = await podway(['trace', '--help']);
  assert.match(r.out.replace(/\s+/g, ' '), 'icmp|icmp6|tcp|udp|ipip|proto N');
});

t.run();
