/** Folders this tool writes in the workspace (each kept out of git: they hold secrets). */

/** K3s state backups (`backups/<host>/<time>/`) and etcd snapshots (`backups/<cluster>/`). */
export const BACKUPS_DIR = 'backups';
/** Kubeconfigs fetched from the K3s servers. */
export const KUBECONFIG_DIR = 'kubeconfig';
/** Reports of performance checks and maintenance runs (`.k3s-etcd/reports/`). */
export const REPORTS_DIR = '.k3s-etcd/reports';
