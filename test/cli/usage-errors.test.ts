// Usage errors exit 2 (README, "exit status"), with one line naming what is wrong: commander's own
// refusals and podway's checks of flag values alike; 1 stays for errors met doing the work.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as path from 'node:path';
import { podway, tempDir } from './cli-kit';

const store = () => ['--datastore', `embedded:${path.join(tempDir(), 'none')}`];

test('get -o with an unknown format: exit 2, one line naming the formats (not the whole help)', async () => {
  const r = await podway(['get', 'ippool', '-o', 'xml', ...store()]);
  assert.is(r.code, 2, r.err);
  assert.is(r.err.trim().split('\n').length, 1, r.err);
  assert.match(r.err, /'xml' is invalid\. use ps, wide, yaml, json, custom-columns=SPEC, custom-columns-file=FILE/);
  const gt = await podway(['get', 'ippool', '-o', 'go-template={{.metadata.name}}', ...store()]);
  assert.is(gt.code, 2);
  assert.match(gt.err, /calicoctl's go-template is not supported by podway/);
});

test('bad flag values of run, log-level and ipam release: exit 2 before anything is asked or opened', async () => {
  const cases: [string[], RegExp][] = [
    [['run', '--bogus-flag'], /unknown option '--bogus-flag'/],
    [['run', '--node', 'usage-x', '--workers', '0'], /--workers must be auto or 1\.\.64/],
    [['log-level', 'bogus', '--control', path.join(tempDir(), 'none.sock')], /unknown log level "bogus"/],
    [['ipam', 'release', '--ip', 'bogus', ...store()], /ipam release: --ip: invalid IP address "bogus"/],
    [['ipam', 'release', ...store()], /ipam release: give --ip IP/],
    [['capture', '--stage', 'bogus', '-w', '-'], /argument 'bogus' is invalid/],
    [['capture', '-s', '10', '-w', '-'], /expected a whole number of bytes from 64 to 262144/],
    [['capture', '--snaplen', '300000', '-w', '-'], /expected a whole number of bytes from 64 to 262144/],
    [['trace', 'host', 'x'], /invalid IPv4 address "x"/],
  ];
  for (const [args, message] of cases) {
    const r = await podway(args);
    assert.is(r.code, 2, `podway ${args.join(' ')}: ${r.err}`);
    assert.match(r.err, message);
  }
  // not a usage error: podway is not there to ask (1)
  const gone = await podway(['log-level', 'info', '--control', path.join(tempDir(), 'none.sock')]);
  assert.is(gone.code, 1, gone.err);
});

test.run();
