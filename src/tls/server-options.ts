// The TLS policy of the serving socket, in one place: what the server is created with and what a
// reload installs must agree, or a reload would silently loosen it.
//
// Cipher policy: Node.js's default cipher list (tls.DEFAULT_CIPHERS, maintained with OpenSSL
// and Node's security releases): TLS 1.3 AEAD suites, then forward-secret ECDHE/DHE with
// AES-GCM or ChaCha20-Poly1305 first, with RC4, DES, 3DES, MD5, export, anonymous and PSK suites
// excluded. The server's order wins (honorCipherOrder), so a client offering a weak-but-allowed
// suite first still gets a strong one. TLS 1.0 and 1.1 are never accepted; `tls.minVersion`
// can raise the floor to TLS 1.3. A hand-written cipher string would go stale; the default
// follows the runtime's security updates.
import type { SecureServerOptions } from 'node:http2'
import type { SecureContextOptions } from 'node:tls'
import type { TlsConfig } from '../config/schema.js'
import type { CertificateSet } from './certificate-set.js'

/** What `server.setSecureContext` gets on a reload: the certificate material plus the policy. */
export function secureContextOptions(set: CertificateSet, config: Pick<TlsConfig, 'minVersion'>): SecureContextOptions {
  return {
    cert: set.bytes.cert,
    key: set.bytes.key,
    ...(set.bytes.clientCa ? { ca: set.bytes.clientCa } : {}),
    minVersion: config.minVersion,
    honorCipherOrder: true,
  }
}

/** Options for the fastify `https` + `http2` server (node:http2 createSecureServer or node:https). */
export function httpsServerOptions(set: CertificateSet, config: TlsConfig): SecureServerOptions {
  const mutual = config.clientCa !== undefined
  return {
    ...secureContextOptions(set, config),
    // With a client CA, a client without a certificate it issued is refused in the handshake,
    // before any HTTP is spoken.
    requestCert: mutual,
    rejectUnauthorized: mutual,
    // Only read by node:http2: clients that do not offer h2 in ALPN get HTTP/1.1.
    allowHTTP1: true,
  }
}
