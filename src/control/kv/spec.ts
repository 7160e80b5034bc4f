// Where the cluster datastore lives, from `--datastore SPEC` or Calico's environment variables:
//   etcd:http://127.0.0.1:2379[,http://...]   etcd v3 (TLS files from ETCD_CA_CERT_FILE,
//                                             ETCD_CERT_FILE, ETCD_KEY_FILE when set)
//   embedded:DIR                              FileKv in DIR (the single-machine default)
//   file:PATH                                 the read-only YAML file datastore (not a KvStore)
// An endpoint without a scheme (HOST:PORT) is http://, or https:// when TLS files are given, as etcd's
// Go client takes it.
// With no spec: DATASTORE_TYPE=etcdv3 (Calico's default type, so also when only ETCD_ENDPOINTS is
// set) with ETCD_ENDPOINTS selects etcd; otherwise the embedded store in DEFAULT_EMBEDDED_DIR.
import type { EtcdTlsFiles } from './etcd-common';

export const DEFAULT_EMBEDDED_DIR = '/var/lib/podway/datastore';

export type DatastoreSpec =
  | { readonly kind: 'etcd'; readonly endpoints: readonly string[]; readonly tls?: EtcdTlsFiles }
  | { readonly kind: 'embedded'; readonly dir: string }
  | { readonly kind: 'file'; readonly path: string };

export type DatastoreEnv = Readonly<Record<string, string | undefined>>;

/**
 * An endpoint without a scheme (`127.0.0.1:2379`, as etcd's Go client and so calicoctl and
 * calico-node take it) is http://, or https:// when TLS files are given: the Go client dials such
 * an endpoint with TLS exactly when it has a TLS configuration.
 */
function withScheme(ep: string, tls: boolean): string {
  return ep.includes('://') ? ep : `${tls ? 'https' : 'http'}://${ep}`;
}

function parseEndpoints(list: string, source: string, tls: boolean): string[] {
  const endpoints = list.split(',').map(s => s.trim()).filter(s => s !== '').map(ep => withScheme(ep, tls));
  if (endpoints.length === 0) throw new Error(`${source}: no etcd endpoint given`);
  for (const ep of endpoints) {
    let url: URL;
    try {
      url = new URL(ep);
    } catch {
      throw new Error(`${source}: etcd endpoint '${ep}' is not a URL (expected HOST:PORT, http://HOST:PORT or https://HOST:PORT)`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new Error(`${source}: etcd endpoint '${ep}' must start with http:// or https://`);
    }
    if (url.hostname === '' || url.port === '') {
      throw new Error(`${source}: etcd endpoint '${ep}' needs a host and a port, e.g. http://127.0.0.1:2379`);
    }
    if ((url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.username !== '') {
      throw new Error(`${source}: etcd endpoint '${ep}' must not have a path, query or user`);
    }
  }
  const secure = endpoints.filter(ep => ep.startsWith('https:')).length;
  if (secure !== 0 && secure !== endpoints.length) {
    throw new Error(`${source}: etcd endpoints mix http:// and https:// (${endpoints.join(',')})`);
  }
  return endpoints.map(ep => ep.replace(/\/$/, ''));
}

function etcdSpec(endpointList: string, source: string, env: DatastoreEnv): DatastoreSpec {
  const tls: EtcdTlsFiles = {
    caFile: env.ETCD_CA_CERT_FILE || undefined,
    certFile: env.ETCD_CERT_FILE || undefined,
    keyFile: env.ETCD_KEY_FILE || undefined,
  };
  const anyTls = !!(tls.caFile || tls.certFile || tls.keyFile);
  const endpoints = parseEndpoints(endpointList, source, anyTls);
  if (!anyTls) return { kind: 'etcd', endpoints };
  if (!endpoints[0].startsWith('https:')) {
    throw new Error(`${source}: etcd TLS files are given (--etcd-*-file / ETCD_CA_CERT_FILE, ETCD_CERT_FILE, ETCD_KEY_FILE) but the etcd endpoints are http://, not https://`);
  }
  if (!tls.certFile !== !tls.keyFile) {
    throw new Error(`${source}: ETCD_CERT_FILE (--etcd-cert-file) and ETCD_KEY_FILE (--etcd-key-file) must be given together`);
  }
  if (!tls.caFile) throw new Error(`${source}: ETCD_CERT_FILE (--etcd-cert-file) needs ETCD_CA_CERT_FILE (--etcd-ca-cert-file) too`);
  return { kind: 'etcd', endpoints, tls };
}

/** Parses a datastore spec (see the module comment); errors name the part that is wrong. */
export function parseDatastoreSpec(spec: string | undefined, env: DatastoreEnv = {}): DatastoreSpec {
  if (spec !== undefined && spec.trim() !== '') {
    const s = spec.trim();
    const colon = s.indexOf(':');
    const scheme = colon > 0 ? s.slice(0, colon) : '';
    const rest = colon > 0 ? s.slice(colon + 1) : '';
    switch (scheme) {
      case 'etcd':
        return etcdSpec(rest, `datastore '${s}'`, env);
      case 'embedded':
        if (rest === '') throw new Error(`datastore '${s}': embedded: needs a directory, e.g. embedded:${DEFAULT_EMBEDDED_DIR}`);
        return { kind: 'embedded', dir: rest };
      case 'file':
        if (rest === '') throw new Error(`datastore '${s}': file: needs the path of a YAML file`);
        return { kind: 'file', path: rest };
      default:
        throw new Error(
          `datastore '${s}': unknown kind '${scheme || s}'; expected etcd:URL[,URL...], embedded:DIR or file:PATH`,
        );
    }
  }
  // The variable read, named in errors: calicoctl's CALICO_NAME when set (the CLI's env holds its
  // value under NAME then: cli/calicoctl-config.ts calicoctlEnv), else NAME.
  const named = (name: string): string => (env[`CALICO_${name}`] !== undefined && env[`CALICO_${name}`] === env[name] ? `CALICO_${name}` : name);
  const type = env.DATASTORE_TYPE?.trim();
  if (type !== undefined && type !== '' && type !== 'etcdv3') {
    throw new Error(`${named('DATASTORE_TYPE')}=${type}: podway supports etcdv3 (or leave it unset for the embedded store)`);
  }
  if (type === 'etcdv3' || (env.ETCD_ENDPOINTS ?? '').trim() !== '') {
    if ((env.ETCD_ENDPOINTS ?? '').trim() === '') {
      throw new Error(`${named('DATASTORE_TYPE')}=etcdv3 needs ${named('ETCD_ENDPOINTS')} (e.g. http://127.0.0.1:2379)`);
    }
    return etcdSpec(env.ETCD_ENDPOINTS!, named('ETCD_ENDPOINTS'), env);
  }
  return { kind: 'embedded', dir: DEFAULT_EMBEDDED_DIR };
}
