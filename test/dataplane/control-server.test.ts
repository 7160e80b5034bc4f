// The control socket's access rules, on real unix sockets in a temp dir: modes 0700/0600, the
// SO_PEERCRED check (clients run as another uid through child_process uid/gid), and stale-socket
// cleanup that removes only a socket nobody serves. Three tests need root (processes as uid 65534).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, chownSync, cpSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { controlRequest, defaultControlPath, startControlServer } from '../../src/dataplane/control-server';
import { peerRefusal } from '../../src/dataplane/peer-cred';
import type { Engine } from '../../src/dataplane/engine';

// The server calls only what a request names; these tests send `status`.
const engine = { status: () => ({ node: 'cs-test' }) } as unknown as Engine;
const NOBODY = 65534;
/**
 * control-server.js as uid 65534 can load it: the checkout may sit where that uid cannot read
 * (a clone under /root), so the compiled sources and the addon are copied, in the same relative
 * layout, into a temp dir anyone may read. Removed at exit.
 */
function readableControlServer(): string {
  const top = mkdtempSync(path.join(os.tmpdir(), 'podway-cs-code-'));
  process.on('exit', () => rmSync(top, { recursive: true, force: true }));
  const dist = path.resolve(__dirname, '..', '..');
  cpSync(path.join(dist, 'src'), path.join(top, 'dist', 'src'), { recursive: true });
  const addon = path.resolve(dist, '..', 'build', 'Release', 'podway_native.node');
  mkdirSync(path.join(top, 'build', 'Release'), { recursive: true });
  cpSync(addon, path.join(top, 'build', 'Release', 'podway_native.node'));
  // the one package it needs at run time (node name validation)
  cpSync(path.resolve(dist, '..', 'node_modules', 'zod'), path.join(top, 'node_modules', 'zod'), { recursive: true });
  execFileSync('chmod', ['-R', 'a+rX', top]);
  return path.join(top, 'dist', 'src', 'dataplane', 'control-server.js');
}

/** A fresh temp dir others may traverse (0711) but not list, so a uid-65534 client can reach a socket below it. */
function tempRoot(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'podway-cs-'));
  chmodSync(dir, 0o711);
  return dir;
}

function outcome(server: net.Server): Promise<Error | null> {
  return new Promise((resolve) => {
    const done = (e: Error | null) => {
      server.off('listening', onListening);
      server.off('error', done);
      resolve(e);
    };
    const onListening = () => done(null);
    server.once('listening', onListening);
    server.once('error', done);
  });
}

function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => (server.listening ? server.close(() => resolve()) : resolve()));
}

const mode = (p: string) => statSync(p).mode & 0o777;

/** Running a process as another uid and chown need root; the test runner recognizes this message. */
function needsRoot(): void {
  if (process.getuid?.() !== 0) throw new Error('this test needs root (it runs processes as uid 65534 and chowns to it)');
}

interface ChildResult { code: number | null; out: string }

/** Runs `node -e script args...` as `uid`, bounded by `timeoutMs` (killed by pid past it). */
function runAs(uid: number, script: string, args: string[], timeoutMs = 10_000): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', script, ...args], { uid, gid: uid, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const timer = setTimeout(() => {
      if (child.pid) process.kill(child.pid, 'SIGKILL');
      reject(new Error(`child as uid ${uid} did not finish within ${timeoutMs} ms: ${out}`));
    }, timeoutMs);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, out }); }); // 'close': its output read to the end
  });
}

// Connects, asks for status, prints the first answer line, or ERROR <code> when connect fails.
const CLIENT = `
const c = require('net').createConnection(process.argv[1]);
let buf = '';
c.on('connect', () => c.write('{"cmd":"status"}\\n'));
c.on('data', (d) => { buf += d; const nl = buf.indexOf('\\n'); if (nl >= 0) { process.stdout.write(buf.slice(0, nl)); process.exit(0); } });
c.on('error', (e) => { process.stdout.write('ERROR ' + e.code); process.exit(0); });
c.on('close', () => { process.stdout.write('CLOSED ' + buf); process.exit(0); });
`;

test('socket is 0600 and its new directories 0700 whatever the umask; root is answered', async () => {
  const root = tempRoot();
  const sock = path.join(root, 'a', 'b', 'x.sock');
  const oldMask = process.umask(0);
  let server: net.Server | undefined;
  try {
    server = startControlServer(engine, sock);
    process.umask(oldMask);
    assert.is(await outcome(server), null);
    assert.ok(lstatSync(sock).isSocket());
    assert.is(mode(sock).toString(8), '600');
    assert.is(mode(path.join(root, 'a', 'b')).toString(8), '700');
    assert.is(mode(path.join(root, 'a')).toString(8), '700');
    assert.equal(await controlRequest(sock, { cmd: 'status' }, 5000), { node: 'cs-test' });
  } finally {
    process.umask(oldMask);
    if (server) await closeServer(server);
    rmSync(root, { recursive: true, force: true });
  }
});

test('an existing directory of ours keeps its mode; the socket in it is still 0600', async () => {
  const root = tempRoot();
  const dir = path.join(root, 'shared');
  mkdirSync(dir, { mode: 0o755 });
  chmodSync(dir, 0o755);
  const sock = path.join(dir, 'x.sock');
  const server = startControlServer(engine, sock);
  try {
    assert.is(await outcome(server), null);
    assert.is(mode(dir).toString(8), '755');
    assert.is(mode(sock).toString(8), '600');
  } finally {
    await closeServer(server);
    rmSync(root, { recursive: true, force: true });
  }
});

test('a directory of ours (root\'s, when root) that group or others may write, /tmp\'s 1777 too, is refused, naming it; nothing made in it', async () => {
  const root = tempRoot();
  try {
    for (const m of [0o777, 0o1777, 0o775]) {
      const dir = path.join(root, `open${m.toString(8)}`);
      mkdirSync(dir);
      chmodSync(dir, m);
      const server = startControlServer(engine, path.join(dir, 'x.sock'));
      // Before: accepted (only the owner was checked), and the socket made in it.
      assert.is((await outcome(server))?.message, `the control socket directory ${dir} is writable by group or others (mode ${m.toString(8)}): refused, another user could replace the socket or plant the files podway keeps beside it (the forwarding records \`podway cleanup\` sets sysctls from); \`chmod go-w ${dir}\` or pass another --control path`);
      const listening = server.listening;
      server.close(); // (when the check is missing it listens: closed, so the failing run ends)
      assert.is(listening, false);
      assert.equal(readdirSync(dir), []);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('another uid is refused by the peer check even when file permissions would let it in', async () => {
  needsRoot();
  const root = tempRoot();
  const dir = path.join(root, 'run');
  const sock = path.join(dir, 'x.sock');
  const server = startControlServer(engine, sock);
  try {
    assert.is(await outcome(server), null);
    // As started, the file permissions already keep uid 65534 out.
    assert.equal(await runAs(NOBODY, CLIENT, [sock]), { code: 0, out: 'ERROR EACCES' });
    // Loosened by hand, the kernel lets it connect; the uid check still refuses it with one line.
    chmodSync(dir, 0o711);
    chmodSync(sock, 0o666);
    const res = await runAs(NOBODY, CLIENT, [sock]);
    assert.equal(JSON.parse(res.out), { ok: false, error: `permission denied: uid ${NOBODY} is not root or the owner of this podway` });
    // Root, on the same server, at the same time, is answered.
    assert.equal(await controlRequest(sock, { cmd: 'status' }, 5000), { node: 'cs-test' });
  } finally {
    await closeServer(server);
    rmSync(root, { recursive: true, force: true });
  }
});

test('a podway running as a non-root uid answers that uid and root', async () => {
  needsRoot();
  const root = tempRoot();
  const home = path.join(root, 'nobody');
  mkdirSync(home, { mode: 0o700 });
  chownSync(home, NOBODY, NOBODY);
  const sock = path.join(home, 'run', 'x.sock');
  const serverScript = `
const { startControlServer } = require(process.argv[1]);
const s = startControlServer({ status: () => ({ node: 'as-' + process.getuid() }) }, process.argv[2]);
s.on('listening', () => process.stdout.write('up\\n'));
s.on('error', (e) => { process.stdout.write('ERROR ' + e.message + '\\n'); process.exit(1); });
setTimeout(() => process.exit(2), 20000);
`;
  const child = spawn(process.execPath, ['-e', serverScript, readableControlServer(), sock], { uid: NOBODY, gid: NOBODY, stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    let out = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`server as uid ${NOBODY} not up within 10 s: ${out}`)), 10_000);
      const seen = (d: Buffer) => {
        out += d;
        if (out.includes('up\n')) { clearTimeout(timer); resolve(); }
        if (out.includes('ERROR')) { clearTimeout(timer); reject(new Error(out)); }
      };
      child.stdout!.on('data', seen);
      child.stderr!.on('data', seen);
      child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited ${code}: ${out}`)); });
    });
    assert.is(statSync(sock).uid, NOBODY);
    assert.is(mode(sock).toString(8), '600');
    assert.is(mode(path.dirname(sock)).toString(8), '700');
    assert.equal(JSON.parse((await runAs(NOBODY, CLIENT, [sock])).out), { ok: true, result: { node: `as-${NOBODY}` } });
    assert.equal(await controlRequest(sock, { cmd: 'status' }, 5000), { node: `as-${NOBODY}` });
  } finally {
    if (child.pid && child.exitCode === null) process.kill(child.pid, 'SIGKILL');
    rmSync(root, { recursive: true, force: true });
  }
});

test('a regular file, a symlink or a directory at the socket path is left alone and start fails naming it', async () => {
  const root = tempRoot();
  try {
    const file = path.join(root, 'file.sock');
    writeFileSync(file, 'precious\n');
    let server = startControlServer(engine, file);
    assert.is((await outcome(server))?.message, `${file} exists and is not a socket (a regular file); refusing to remove it`);
    assert.is(readFileSync(file, 'utf8'), 'precious\n');

    const link = path.join(root, 'link.sock');
    symlinkSync(file, link);
    server = startControlServer(engine, link);
    assert.is((await outcome(server))?.message, `${link} exists and is not a socket (a symbolic link); refusing to remove it`);
    assert.ok(lstatSync(link).isSymbolicLink());
    assert.is(readFileSync(file, 'utf8'), 'precious\n');

    const dir = path.join(root, 'dir.sock');
    mkdirSync(dir);
    server = startControlServer(engine, dir);
    assert.is((await outcome(server))?.message, `${dir} exists and is not a socket (a directory); refusing to remove it`);
    assert.ok(statSync(dir).isDirectory());
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a directory owned by another uid, or a file where the directory should be, is refused', async () => {
  needsRoot();
  const root = tempRoot();
  try {
    const theirs = path.join(root, 'theirs');
    mkdirSync(theirs, { mode: 0o777 });
    chownSync(theirs, NOBODY, NOBODY);
    let server = startControlServer(engine, path.join(theirs, 'x.sock'));
    assert.is((await outcome(server))?.message,
      `the control socket directory ${theirs} is owned by uid ${NOBODY}, not by this podway's uid ${process.getuid!()}; refusing to use it`);
    assert.is(server.listening, false);

    const notDir = path.join(root, 'plain');
    writeFileSync(notDir, '');
    server = startControlServer(engine, path.join(notDir, 'x.sock'));
    const err = await outcome(server);
    assert.ok(err?.message.startsWith(`cannot create the control socket directory ${notDir}: `), err?.message);

    // where mkdir says ENOENT under an existing parent (/proc), Node's recursive mkdir loops for
    // ever at 100% CPU: refused at once, naming the directory
    const procDir = `/proc/podway-nope-${process.pid}`;
    server = startControlServer(engine, path.join(procDir, 'n.sock'));
    const err2 = await outcome(server);
    assert.ok(err2?.message.startsWith(`cannot create the control socket directory ${procDir}: `) && /ENOENT/.test(err2.message), err2?.message);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a stale socket (its podway was killed) is replaced; a live one is not', async () => {
  const root = tempRoot();
  const sock = path.join(root, 'x.sock');
  // A podway that dies by SIGKILL leaves its socket file behind with nobody accepting on it.
  const crashed = spawn(process.execPath, ['-e', `require('net').createServer().listen(process.argv[1], () => process.stdout.write('up'))`, sock], { stdio: ['ignore', 'pipe', 'inherit'] });
  let server: net.Server | undefined;
  let second: net.Server | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('listener child not up within 10 s')), 10_000);
      crashed.stdout!.once('data', () => { clearTimeout(timer); resolve(); });
    });
    process.kill(crashed.pid!, 'SIGKILL');
    await new Promise((r) => (crashed.exitCode === null && crashed.signalCode === null ? crashed.once('exit', r) : r(null)));
    assert.ok(lstatSync(sock).isSocket());
    const refused = await controlRequest(sock, { cmd: 'status' }, 5000).then(() => null, (e: Error) => e.message);
    assert.is(refused, `podway is not running (the control socket at ${sock} is left from a run that ended)`);

    // Answering on that path proves the stale file was replaced by a listening socket.
    server = startControlServer(engine, sock);
    assert.is(await outcome(server), null);
    assert.is(mode(sock).toString(8), '600');
    assert.equal(await controlRequest(sock, { cmd: 'status' }, 5000), { node: 'cs-test' });

    // The live one stays: a second start fails and the first keeps answering on the same path.
    second = startControlServer(engine, sock);
    assert.is((await outcome(second))?.message, 'in use by a running podway (stop it first, or pass another --control path)');
    assert.equal(await controlRequest(sock, { cmd: 'status' }, 5000), { node: 'cs-test' });
  } finally {
    if (crashed.pid && crashed.exitCode === null && crashed.signalCode === null) process.kill(crashed.pid, 'SIGKILL');
    if (second) await closeServer(second);
    if (server) await closeServer(server);
    rmSync(root, { recursive: true, force: true });
  }
});

test('a connection whose peer cannot be identified is refused (fail closed)', () => {
  // A socket with no handle (never connected): nothing to ask SO_PEERCRED about.
  assert.is(peerRefusal(new net.Socket(), 0),
    'permission denied: cannot identify the peer (this connection has no file descriptor to ask SO_PEERCRED)');
});

test('defaultControlPath takes DNS-1123 node names only', () => {
  assert.is(defaultControlPath('node-1.example'), '/run/podway/node-1.example.sock');
  assert.throws(() => defaultControlPath('../../etc/foo'), /invalid node name "\.\.\/\.\.\/etc\/foo"/);
  assert.throws(() => defaultControlPath('a/b'), /invalid node name "a\/b"/);
});

test.run();
