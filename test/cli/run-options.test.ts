// `podway run` option checks that fail before anything starts (no datastore, no devices touched).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { podway } from './cli-kit';

const t = suite('run options');

t('--jit-budget outside 256..1048576 or not an integer is refused before the node starts', async () => {
  for (const bad of ['0', '255', '1048577', '4096.5', 'x']) {
    const r = await podway(['run', '--node', 'jit-opt-test', '--jit-budget', bad]);
    assert.is.not(r.code, 0, `--jit-budget ${bad} was accepted`);
    assert.match(r.err, /--jit-budget must be 256\.\.1048576/);
  }
});

t('--help names --jit-budget with V8\'s own default beside it', async () => {
  const r = await podway(['run', '--help']);
  assert.match(r.out, /--jit-budget <bytes>/);
  assert.match(r.out, /default: 4096/);
  assert.match(r.out, /67584/);
});

t.run();
