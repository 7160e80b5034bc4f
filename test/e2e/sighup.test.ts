/**
 * SIGHUP on a running `podway run` (root, network namespaces). It used to end podway at once
 * (Node's default action): no log line, no stop, the control socket left behind, the pods' traffic
 * gone. Now:
 *   - `kill -HUP PID` (a "reload" by habit): said in the log, ignored; the pods still ping across
 *     nodes; a SIGTERM after it stops podway as ever (exit 0, control socket removed);
 *   - the terminal of a `podway run ... &` closed (an interactive bash in a pseudo-terminal, the
 *     way an SSH session holds one, hung up): bash sends SIGHUP to the job's whole process group
 *     (podway, its spawner helper and the `ip monitor`s the helper runs) and podway's stderr then
 *     fails (EIO). podway, the helper and the monitors live on, the pods still ping, and a SIGTERM
 *     still stops it cleanly (the control socket removed).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { Lab, LabNodeSpec } from '../../src/lab/lab';
import { controlRequest } from '../../src/dataplane/control-server';
import { guard, teardown, isRoot, until, waitLog, logTail, sleep, track, atCleanup } from './e2e-kit';

const BIN = path.resolve(__dirname, '..', '..', '..', 'bin', 'podway.js');

const SPEC: LabNodeSpec[] = [
  { name: 'node1', subnet: 'a', pods: [{ name: 'web-1', type: 'veth' }] },
  { name: 'node2', subnet: 'a', pods: [{ name: 'web-2', type: 'veth' }] },
];

/**
 * An interactive bash in a pseudo-terminal (python's pty), as an SSH session runs one: it runs
 * the command line given as a background job and prints `JOB_PID=<pid>`; on the line "hangup" on
 * its stdin this helper closes the terminal's master side (the SSH session ending), waits for
 * bash to go and prints `BASH_EXITED <status>`. Everything the terminal shows is copied to stdout.
 */
const PTY_SHELL = `
import os, pty, select, sys
pid, fd = pty.fork()
if pid == 0:
    os.environ['PS1'] = ''
    os.execvp('bash', ['bash', '--norc', '--noprofile', '-i'])
os.write(fd, (sys.argv[1] + ' &\\necho "JOB_PID=$!"\\n').encode())
while True:
    r, _, _ = select.select([fd, sys.stdin], [], [], 1.0)
    if fd in r:
        try:
            data = os.read(fd, 65536)
        except OSError:
            data = b''
        if data:
            sys.stdout.write(data.decode('utf8', 'replace'))
            sys.stdout.flush()
    if sys.stdin in r:
        line = sys.stdin.readline()
        if line.strip() == 'hangup' or line == '':
            os.close(fd)
            _, st = os.waitpid(pid, 0)
            print('BASH_EXITED %d' % st, flush=True)
            break
`;

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** A process's parent and command line from /proc (null once it is gone). */
function proc(pid: number): { ppid: number; pgid: number; argv: string[] } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(f[1]), pgid: Number(f[2]), argv: readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean) };
  } catch {
    return null;
  }
}

/** podway's spawner helper and the `ip monitor`s it runs (its children). */
function helpers(podway: number): { spawner: number[]; monitors: number[] } {
  const all = readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map(Number);
  const info = new Map(all.map((p) => [p, proc(p)] as const));
  const spawner = all.filter((p) => info.get(p)?.ppid === podway && info.get(p)!.argv.some((a) => a.endsWith('spawner-child.js')));
  const monitors = all.filter((p) => spawner.includes(info.get(p)?.ppid ?? -1) && info.get(p)!.argv[0] === 'ip' && info.get(p)!.argv.includes('monitor'));
  return { spawner, monitors };
}

function pingOk(lab: Lab, from: string, to: string, what: string): void {
  const p = lab.ping(from, lab.pod(to).ip, 4, 56, ['-W', '3']);
  assert.is(p.loss, 0, `${what}: ${from} -> ${to}: ${JSON.stringify(p)}`);
}

test('kill -HUP: said in the log and ignored; the pods still ping; SIGTERM then stops podway cleanly', async () => {
  if (!isRoot()) throw new Error('needs root (network namespaces)');
  const lab = guard(new Lab(SPEC));
  try {
    lab.build();
    await lab.startPodway('node1');
    await lab.startPodway('node2');
    pingOk(lab, 'web-1', 'web-2', 'before the SIGHUP');
    const n1 = lab.node('node1');
    const pid = n1.proc!.pid!;
    const before = helpers(pid);
    assert.ok(before.spawner.length === 1 && before.monitors.length > 0, `podway ${pid} runs its spawner helper and an ip monitor: ${JSON.stringify(before)}`);
    const mark = n1.log.length;
    process.kill(pid, 'SIGHUP');
    const said = await waitLog(n1, /SIGHUP ignored/, mark, 10_000);
    assert.ok(said, `podway says it ignores the SIGHUP: ${n1.log.slice(mark).join(' | ')}`);
    assert.match(said!, /stop it with SIGTERM/i);
    // a second one within the minute is counted, not said again
    process.kill(pid, 'SIGHUP');
    await sleep(500);
    assert.ok(alive(pid) && n1.proc!.exitCode === null, `podway ${pid} still runs after two SIGHUPs: ${n1.log.slice(mark).join(' | ')}`);
    assert.is(n1.log.slice(mark).filter((l) => /SIGHUP ignored/.test(l)).length, 1, 'said once');
    pingOk(lab, 'web-1', 'web-2', 'after the SIGHUP');
    pingOk(lab, 'web-2', 'web-1', 'after the SIGHUP');
    assert.equal(helpers(pid), before, 'the spawner helper and its ip monitors are the same processes');
    const code = await lab.stopPodway('node1');
    assert.is(code, 0, `SIGTERM after the SIGHUP: a clean stop: ${n1.log.slice(-5).join(' | ')}`);
    assert.ok(n1.log.slice(mark).some((l) => /SIGTERM: stopping/.test(l)) && n1.log.slice(mark).some((l) => /stopped: forwarded until/.test(l)), n1.log.slice(mark).join(' | '));
    assert.not.ok(existsSync(n1.control), 'the control socket is removed');
  } catch (e) {
    console.log(logTail(lab, 20));
    throw e;
  } finally {
    await teardown(lab);
  }
});

test('the terminal of `podway run ... &` closed: the job\'s process group gets SIGHUP and stderr fails; podway, its helper and monitors live on, the pods ping, SIGTERM stops it cleanly', async () => {
  if (!isRoot()) throw new Error('needs root (network namespaces)');
  const lab = guard(new Lab(SPEC));
  let podway = 0;
  const forget = atCleanup(() => {
    if (podway && alive(podway)) process.kill(podway, 'SIGKILL');
  });
  try {
    lab.build();
    await lab.startPodway('node2');
    const n1 = lab.node('node1');
    const line = ['ip', 'netns', 'exec', n1.ns, process.execPath, BIN, 'run', '--node', n1.name, '--datastore', lab.datastoreSpec, '--control', n1.control, '--model-cache', lab.modelCachePath(n1.name)].join(' ');
    const shell = track(spawn('python3', ['-c', PTY_SHELL, line], { stdio: ['pipe', 'pipe', 'pipe'] }));
    let out = '';
    shell.stdout!.setEncoding('utf8');
    shell.stdout!.on('data', (d: string) => (out += d));
    shell.stderr!.setEncoding('utf8');
    shell.stderr!.on('data', (d: string) => (out += d));
    assert.ok(await until(() => /JOB_PID=(\d+)/.test(out), 20_000), `bash started the job: ${out}`);
    podway = Number(/JOB_PID=(\d+)/.exec(out)![1]);
    // up: its control socket answers
    assert.ok(await until(async () => existsSync(n1.control) && (await controlRequest(n1.control, { cmd: 'status' }, 2000).then(() => true, () => false)), 60_000), `podway ${podway} came up: ${out.slice(-2000)}`);
    pingOk(lab, 'web-1', 'web-2', 'before the hang-up');
    const me = proc(podway)!;
    assert.ok(me.pgid === podway && me.pgid !== process.pid, `bash ran podway as a job of its own process group: ${JSON.stringify(me)}`);
    const before = helpers(podway);
    assert.ok(before.spawner.length === 1 && before.monitors.length > 0, `podway runs its spawner helper and an ip monitor: ${JSON.stringify(before)}`);
    assert.ok(before.spawner.every((p) => proc(p)?.pgid === podway), 'the helper is in the job\'s process group (a shell\'s SIGHUP reaches it)');

    shell.stdin!.write('hangup\n');
    assert.ok(await until(() => /BASH_EXITED/.test(out), 20_000), `bash went with its terminal: ${out.slice(-1000)}`);
    // podway logs on (a change it sees, the start's later lines): its stderr, the closed terminal, fails now
    await sleep(3000);
    assert.ok(alive(podway), `podway ${podway} survived the hang-up: ${out.slice(-2000)}`);
    assert.equal(helpers(podway), before, 'the spawner helper and its ip monitors are the same processes');
    pingOk(lab, 'web-1', 'web-2', 'after the hang-up');
    pingOk(lab, 'web-2', 'web-1', 'after the hang-up');
    const st = (await controlRequest(n1.control, { cmd: 'status' }, 5000)) as { endpoints: number };
    assert.is(st.endpoints, 1, `it answers status: ${JSON.stringify(st)}`);

    process.kill(podway, 'SIGTERM');
    assert.ok(await until(() => !alive(podway), 30_000), `podway ${podway} stopped on SIGTERM`);
    assert.not.ok(existsSync(n1.control), 'a clean stop: the control socket is removed');
    const left = () => [...before.spawner, ...before.monitors].filter((p) => alive(p) && proc(p) !== null && !/^Z/.test(readFileSync(`/proc/${p}/stat`, 'utf8').slice(readFileSync(`/proc/${p}/stat`, 'utf8').lastIndexOf(')') + 2)));
    assert.ok(await until(() => left().length === 0, 10_000), `the helper and its monitors ended with podway: ${left().join(', ')}`);
  } catch (e) {
    console.log(logTail(lab, 20));
    throw e;
  } finally {
    if (podway && alive(podway)) process.kill(podway, 'SIGKILL');
    forget();
    await teardown(lab);
  }
});

test.run();
