// The etcd TLS flags every datastore-taking command accepts, and how they combine with Calico's
// environment names (the flag wins). The files themselves are read and checked by the etcd client
// (etcd-common.ts readEtcdTls, the same for both clients).
import { Option } from 'commander';
import type { DatastoreEnv } from '../control/kv/spec';
import { calicoctlEnv } from './calicoctl-config';

export interface EtcdTlsFlags {
  readonly etcdCaCertFile?: string;
  readonly etcdCertFile?: string;
  readonly etcdKeyFile?: string;
}

export const etcdCaCertOption = () => new Option('--etcd-ca-cert-file <path>', 'CA certificate for an https:// etcd (or ETCD_CA_CERT_FILE)');
export const etcdCertOption = () => new Option('--etcd-cert-file <path>', 'client certificate for etcd (or ETCD_CERT_FILE)');
export const etcdKeyOption = () => new Option('--etcd-key-file <path>', 'client key for etcd (or ETCD_KEY_FILE)');

/**
 * Calico's environment names as calicoctl reads them (CALICO_NAME, else NAME: calicoctl-config.ts
 * calicoctlEnv) with the flags merged in (a flag wins over its variable).
 */
export function envWithEtcdTlsFlags(o: EtcdTlsFlags, env: DatastoreEnv = process.env): DatastoreEnv {
  return {
    ...calicoctlEnv(env),
    ...(o.etcdCaCertFile ? { ETCD_CA_CERT_FILE: o.etcdCaCertFile } : {}),
    ...(o.etcdCertFile ? { ETCD_CERT_FILE: o.etcdCertFile } : {}),
    ...(o.etcdKeyFile ? { ETCD_KEY_FILE: o.etcdKeyFile } : {}),
  };
}

/** calicoctl's -c/--config FILE (a CalicoAPIConfig; cli/calicoctl-config.ts), beside --datastore. */
export const calicoctlConfigOption = () => new Option('-c, --config <file>', `calicoctl's connection file (a CalicoAPIConfig, YAML or JSON: datastoreType etcdv3, etcdEndpoints, etcd*File; not with --datastore; default /etc/calico/calicoctl.cfg when it exists and nothing else names a datastore)`);
