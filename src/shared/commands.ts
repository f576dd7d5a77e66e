/**
 * Every command id in one typed table. package.json's `contributes.commands` must list exactly
 * these (a unit test checks both directions); the editor registers a handler for each.
 */
export const COMMANDS = {
  inventoryCreate: 'k3sEtcd.inventory.create',
  inventoryOpen: 'k3sEtcd.inventory.open',
  inventoryValidate: 'k3sEtcd.inventory.validate',
  treeRefresh: 'k3sEtcd.tree.refresh',
  problemReveal: 'k3sEtcd.problem.reveal',
  clusterOpenPanel: 'k3sEtcd.cluster.openPanel',
  clusterOpenHealth: 'k3sEtcd.cluster.openHealth',
  hostCopyAddress: 'k3sEtcd.host.copyAddress',
  certsGenerate: 'k3sEtcd.certs.generate',
  certsInspect: 'k3sEtcd.certs.inspect',
  certsImportCa: 'k3sEtcd.certs.importCa',
  certsReissue: 'k3sEtcd.certs.reissue',
  certsCheck: 'k3sEtcd.certs.check',
  certsRenew: 'k3sEtcd.certs.renew',
  certsRotateCa: 'k3sEtcd.certs.rotateCa',
  provisionEtcd: 'k3sEtcd.provision.etcd',
  provisionPreview: 'k3sEtcd.provision.preview',
  memberAdd: 'k3sEtcd.member.add',
  memberRemove: 'k3sEtcd.member.remove',
  memberReplace: 'k3sEtcd.member.replace',
  memberFixPeerUrl: 'k3sEtcd.member.fixPeerUrl',
  upgradeEtcd: 'k3sEtcd.upgrade.etcd',
  k3sInstall: 'k3sEtcd.k3s.install',
  k3sPreview: 'k3sEtcd.k3s.preview',
  k3sBackup: 'k3sEtcd.k3s.backup',
  k3sRestore: 'k3sEtcd.k3s.restore',
  k3sFetchKubeconfig: 'k3sEtcd.k3s.fetchKubeconfig',
  k3sRefreshState: 'k3sEtcd.k3s.refreshState',
  migrateSqliteToEtcd: 'k3sEtcd.migrate.sqliteToEtcd',
  migrateEtcdToSqlite: 'k3sEtcd.migrate.etcdToSqlite',
  maintain: 'k3sEtcd.cluster.maintain',
  scheduleMaintenance: 'k3sEtcd.cluster.scheduleMaintenance',
  snapshotSave: 'k3sEtcd.snapshot.save',
  snapshotList: 'k3sEtcd.snapshot.list',
  snapshotRestore: 'k3sEtcd.snapshot.restore',
  clusterRecover: 'k3sEtcd.cluster.recover',
  monitoringExport: 'k3sEtcd.monitoring.export',
  keyspaceShowKey: 'k3sEtcd.keyspace.showKey',
  backupInstall: 'k3sEtcd.backup.install',
  backupRemove: 'k3sEtcd.backup.remove',
  backupKeygen: 'k3sEtcd.backup.keygen',
  backupRun: 'k3sEtcd.backup.run',
  backupStatus: 'k3sEtcd.backup.status',
  backupRefresh: 'k3sEtcd.backup.refresh',
  etcdctlOpenTerminal: 'k3sEtcd.etcdctl.openTerminal',
  etcdctlCopyEnv: 'k3sEtcd.etcdctl.copyEnv',
  docsOpen: 'k3sEtcd.docs.open',
  logShow: 'k3sEtcd.log.show',
} as const;

export type CommandKey = keyof typeof COMMANDS;
export type CommandId = (typeof COMMANDS)[CommandKey];

export const ALL_COMMAND_IDS: readonly CommandId[] = Object.values(COMMANDS);

/** Context keys the extension sets with `setContext`. */
export const CONTEXT_KEYS = {
  inventoryPresent: 'k3sEtcd.inventoryPresent',
  /** A cluster of the inventory has its certificate set (members' certificates in its pki). */
  hasCertificates: 'k3sEtcd.hasCertificates',
  /** A cluster's etcd answered (its member list), as the last health check saw it. */
  provisioned: 'k3sEtcd.provisioned',
} as const;

export const VIEW_IDS = {
  clusters: 'k3sEtcd.clusters',
} as const;

export const EXTENSION_ID = 'k3s-etcd.k3s-etcd';
