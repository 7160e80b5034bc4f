// The control plane's public surface: resources in, a per-node dataplane model out.
export * from './ipv4';
export * from './mac';
export * from './resources';
export * from './snapshot';
export * from './datastore';
export * from './file-datastore';
export * from './route-calc';
export * from './route-calc6';
export * from './calico-kinds';
export { BGPConfigurationSchema, BGPPeerSchema, ClusterInformationSchema, FelixConfigurationSchema, IPReservationSchema, ProfileSchema, SCHEMA_OF_KIND } from './calico-kind-schemas';
export * from './resource-names';
export * from './v3-store';
export * from './kv-datastore';
export * from './node-registration';
export * from './open-datastore';
