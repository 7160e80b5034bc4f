// `podway run` option checks that fail before anything starts (no datastore, no devices touched).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { podway } from './cli-kit';
import { parseWorkers, WORKERS_AUTO_MAX } from '../../src/cli/workers-option';

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

t('--orphan-hold-interval outside 1s..1h or not a duration is refused before the node starts, naming the flag', async () => {
  for (const [bad, said] of [['0s', /--orphan-hold-interval must be 1s\.\.1h/], ['999ms', /--orphan-hold-interval must be 1s\.\.1h/], ['61m', /--orphan-hold-interval must be 1s\.\.1h/], ['soon', /--orphan-hold-interval "soon": expected a duration/]] as const) {
    const r = await podway(['run', '--node', 'orphan-hold-opt-test', '--orphan-hold-interval', bad]);
    assert.is.not(r.code, 0, `--orphan-hold-interval ${bad} was accepted`);
    assert.match(r.err, said);
  }
});

t('--workers takes auto or 1..64; anything else is refused before the node starts', async () => {
  for (const bad of ['0', '65', '1.5', 'x', 'Auto', '']) {
    const r = await podway(['run', '--node', 'workers-opt-test', '--workers', bad]);
    assert.is.not(r.code, 0, `--workers ${JSON.stringify(bad)} was accepted`);
    assert.match(r.err, /--workers must be auto or 1\.\.64/);
  }
});

t('--sched-slice-us takes 0 or 100..100000 µs; anything else is refused before the node starts', async () => {
  for (const bad of ['50', '99', '100001', '150.5', 'x']) {
    const r = await podway(['run', '--node', 'slice-opt-test', '--sched-slice-us', bad]);
    assert.is.not(r.code, 0, `--sched-slice-us ${bad} was accepted`);
    assert.match(r.err, /--sched-slice-us must be 0 or 100\.\.100000/);
  }
});

t('--model-thread-hang-after takes a duration of 2s..10m; anything else is refused before the node starts', async () => {
  for (const bad of ['1s', '1999ms', '10m1s', '0', 'x', '']) {
    const r = await podway(['run', '--node', 'hang-opt-test', '--model-thread-hang-after', bad]);
    assert.is.not(r.code, 0, `--model-thread-hang-after ${JSON.stringify(bad)} was accepted`);
    assert.match(r.err, /run: --model-thread-hang-after (must be 2s\.\.10m|".*": expected a duration like 60s, 1m30s or 500ms)$/m);
  }
  const help = await podway(['run', '--help']);
  assert.match(help.out, /--model-thread-hang-after <duration>/);
});

t('--model-thread-stable-after takes a duration of 10s..1h; anything else is refused before the node starts', async () => {
  for (const bad of ['9s', '9999ms', '1h1s', '0', 'x', '']) {
    const r = await podway(['run', '--node', 'stable-opt-test', '--model-thread-stable-after', bad]);
    assert.is(r.code, 2, `--model-thread-stable-after ${JSON.stringify(bad)} was accepted: ${r.err}`);
    assert.match(r.err, /run: --model-thread-stable-after (must be 10s\.\.1h|".*": expected a duration like 60s, 1m30s or 500ms)$/m);
  }
  const help = await podway(['run', '--help']);
  assert.match(help.out, /--model-thread-stable-after <duration>/);
});

t('--workers auto is one thread per CPU, at most WORKERS_AUTO_MAX', () => {
  assert.equal(parseWorkers('auto', 1), { count: 1, auto: true });
  assert.equal(parseWorkers('auto', 2), { count: 2, auto: true });
  assert.equal(parseWorkers('auto', 64), { count: WORKERS_AUTO_MAX, auto: true });
  assert.equal(parseWorkers('3', 1), { count: 3, auto: false });
});

t('--help says where the Felix settings come from: flag, FELIX_ variable, FelixConfiguration node.<name>, default', async () => {
  const r = await podway(['run', '--help']);
  assert.match(r.out, /Felix settings \(--log-level, --nat-outgoing-exclusions, --endpoint-to-host, --allow-vxlan-from-pods, --allow-ipip-from-pods\): the flag, else its FELIX_ variable, else FelixConfiguration node.<this node>, else FelixConfiguration default/);
});

t('cni install --help: without --mtu the plugin follows Felix\'s pod MTU and the underlay (docs/cni.md), no fixed 1450/1480/1500', async () => {
  const r = await podway(['cni', 'install', '--help']);
  assert.is(r.code, 0, r.err);
  const mtu = r.out.replace(/\s+/g, ' ');
  assert.match(mtu, 'default: none written: at each ADD the plugin takes Felix\'s pod MTU');
  assert.match(mtu, 'vxlanMTU / ipipMTU / vxlanMTUV6 when set, else the underlay\'s MTU less the overhead');
  assert.not.match(mtu, '1480 IPIP, else 1500');
});

t.run();
