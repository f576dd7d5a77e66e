/**
 * @peculiar/x509 needs the Reflect metadata polyfill loaded first. The bundles keep this module
 * in its own file (dist/x509.js), required only when certificates are issued.
 */
import 'reflect-metadata';
export * from '@peculiar/x509';
